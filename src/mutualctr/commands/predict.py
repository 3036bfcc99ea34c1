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

A store whose rows have behaviour histories gives each row its user's history as a serving
system would (``serving.histories``): from an event log, the store's own by default or
``--history-log FILE...`` (its events up to ``--history-until T`` only, if given), or from the
input's own history columns (``hist_item``: ``^``-separated or lists). The source, its users and
events and the rows with an empty history are printed; empty histories, and unlabelled rows
under ``events: positive``, are warned about on stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from mutualctr.serving.histories import HistoryWarning
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
    parser.add_argument("--history-log", nargs="+", metavar="FILE",
                        help="stores with behaviour histories: the event log (raw files of the "
                             "store's format, in time order) the rows' histories come from "
                             "(default: the log the store was prepared from)")
    parser.add_argument("--history-until", type=float, metavar="T",
                        help="only the log's events at or before time T")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inference = InferenceRun.open(args.run, args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HistoryWarning)
        scored = inference.score_file(args.input, args.out, args.batch_size,
                                      history_log=args.history_log,
                                      history_until=args.history_until)
    for warning in caught:
        if issubclass(warning.category, HistoryWarning):
            print(f"mutualctr: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    if scored.histories is not None:
        print(scored.histories.summary())
    summary = scored.unseen.summary()
    if summary is not None:
        print(summary)
    print(f"wrote {scored.rows:,d} rows with predictions to {scored.path}")
    return 0
