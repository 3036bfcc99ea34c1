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
encoder never kept are counted per field and summarised in one printed line.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import torch

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.raw import UnseenValues
from mutualctr.data.store import EncodedStore
from mutualctr.errors import DataError
from mutualctr.files import atomic_path
from mutualctr.runs.restore import TrainedRun, load_trained
from mutualctr.training.trainer import predict_split, resolve_device


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
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.set_defaults(func=run)


def with_predictions(raw: pa.Table, predictions: dict[str, np.ndarray]) -> pa.Table:
    """``raw`` with one column per named prediction (``prediction`` when there is one)."""
    for name, values in predictions.items():
        column = "prediction" if len(predictions) == 1 else f"prediction_{name}"
        raw = raw.append_column(column, pa.array(values))
    return raw


def scored_chunks(
    trained: TrainedRun, chunks: Iterable[tuple[SplitArrays, pa.Table]], batch_size: int,
    device: torch.device, unseen: UnseenValues,
) -> Iterator[pa.Table]:
    """Each chunk's raw rows with their predictions; OOV values are tallied in ``unseen``."""
    for encoded, raw in chunks:
        unseen.add(encoded)
        predictions = predict_split(trained.group, trained.objective, encoded, batch_size,
                                    device)
        yield with_predictions(raw, predictions)


def write_csv(tables: Iterable[pa.Table], path: Path) -> int:
    """Write ``tables`` (one schema) to ``path`` as one CSV, one at a time; the rows written."""
    writer: pa_csv.CSVWriter | None = None
    rows = 0
    try:
        for table in tables:
            if writer is None:
                writer = pa_csv.CSVWriter(path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def run(args: argparse.Namespace) -> int:
    trained = load_trained(args.run)
    store = EncodedStore.open(args.data or trained.config["data"])
    trained.require_feature_map(store.feature_map)
    device = resolve_device("auto")
    trained.group.to(device)
    trained.objective.to(device)
    unseen = UnseenValues(store.feature_map)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        scored = scored_chunks(trained, store.encode_chunks(args.input), args.batch_size,
                               device, unseen)
        rows = write_csv(scored, tmp)
        if rows == 0:  # readers refuse empty files; this is a file whose every row the
            # store's settings leave out (e.g. MovieLens ratings equal to drop_rating)
            raise DataError("no rows to predict", file=args.input)
    summary = unseen.summary()
    if summary is not None:
        print(summary)
    print(f"wrote {rows:,d} rows with predictions to {out}")
    return 0
