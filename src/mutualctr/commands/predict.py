"""``mutualctr predict RUN --input RAW --out preds.csv``: score raw rows with a trained run.

The raw file is read and encoded exactly as training data was (the store's saved encoder: same
vocabularies, OOV ids, numeric transforms); it may lack the label column (e.g. Kaggle's Criteo
``test.txt``, Avazu ``test.csv``; see docs/data.md). The output is the raw rows with one
prediction column appended (``prediction``), or one per named prediction of a group
(``prediction_<name>``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from mutualctr.data.store import EncodedStore
from mutualctr.errors import DataError
from mutualctr.files import atomic_path
from mutualctr.training.restore import load_trained
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


def run(args: argparse.Namespace) -> int:
    trained = load_trained(args.run)
    store = EncodedStore.open(args.data or trained.config["data"])
    trained.require_feature_map(store.feature_map)
    encoded, raw = store.encode_file(args.input)
    if len(encoded) == 0:
        raise DataError("no rows to predict", file=args.input)
    device = resolve_device("auto")
    trained.group.to(device)
    trained.objective.to(device)
    predictions = predict_split(trained.group, trained.objective, encoded, args.batch_size,
                                device)
    table = raw
    for name, values in predictions.items():
        column = "prediction" if len(predictions) == 1 else f"prediction_{name}"
        table = table.append_column(column, pa.array(values))
    out = Path(args.out)
    with atomic_path(out) as tmp:
        pa_csv.write_csv(table, tmp)
    print(f"wrote {len(encoded)} rows with {len(predictions)} prediction column(s) to {out}")
    return 0
