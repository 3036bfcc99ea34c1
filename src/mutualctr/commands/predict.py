"""``mutualctr predict RUN --input RAW --out preds.csv``: score raw rows with a trained run.

The raw file is read and encoded exactly as training data was (the store's saved encoder: same
vocabularies, OOV ids, numeric transforms); it may lack the label column (e.g. Kaggle's Criteo
``test.txt``, Avazu ``test.csv``; see docs/data.md). The output is the raw rows with one
prediction column appended (``prediction``), or one per named prediction of a group
(``prediction_<name>``).

Rows are streamed: each chunk the reader yields is encoded, scored and appended to the output
before the next is read, so memory does not grow with the file. The output is written under a
temporary name and renamed when complete, so a bad row (an error naming file, line and field)
or a failure midway leaves no output, or the previous one, never a partial file. Values the
encoder never kept are counted per field and summarised in one printed line. The work is
``serving.InferenceRun.score_file``.
"""

from __future__ import annotations

import argparse

from mutualctr.serving.inference import DEFAULT_BATCH_SIZE, InferenceRun


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="click probabilities for raw rows, appended to the rows",
        description="Encode a raw file with the run's store encoder and append predictions.",
    )
    parser.add_argument("run", help="run folder written by `mutualctr train`")
    parser.add_argument("--input", required=True,
                        help="raw file in the store's format, with or without the label column")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--data", help="encoded store whose encoder to use (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inference = InferenceRun.open(args.run, args.data)
    scored = inference.score_file(args.input, args.out, args.batch_size)
    summary = scored.unseen.summary()
    if summary is not None:
        print(summary)
    print(f"wrote {scored.rows:,d} rows with predictions to {scored.path}")
    return 0
