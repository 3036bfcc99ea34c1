"""Time FuxiCTR 2.3.10's FeatureProcessor on Criteo-format splits (run by bench_preprocess.py).

Settings of BARS Criteo_x4 (FuxiCTR's ``Criteo_x4`` dataset config): integer fields I1..I13 as
categorical after ``convert_to_bucket`` (``floor(ln(x)^2)`` for x > 2), categorical fields
C1..C26 as strings, ``min_categr_count`` 10, the encoder fitted on train. FuxiCTR 2.3.10's
``build_dataset`` cannot split a lazily read file (``split_train_test`` indexes it like a pandas
frame), so the caller passes train/valid/test files split beforehand (8:1:1); the split is not
timed. Prints one line ``RESULT {json}``.

Usage (inside the FuxiCTR virtual environment)::

    python run_preprocess.py --train T.csv --valid V.csv --test X.csv --work DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from fuxictr.datasets.criteo import CustomizedFeatureProcessor
from fuxictr.preprocess.build_dataset import build_dataset

INT_FIELDS = [f"I{i}" for i in range(1, 14)]
CAT_FIELDS = [f"C{i}" for i in range(1, 27)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split in ("train", "valid", "test"):
        parser.add_argument(f"--{split}", required=True, help=f"{split} split, TSV with header")
    parser.add_argument("--work", required=True, help="folder for FuxiCTR's output")
    parser.add_argument("--min-count", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    start = time.perf_counter()
    processor = CustomizedFeatureProcessor(
        feature_cols=[
            {"name": INT_FIELDS, "active": True, "dtype": "float", "type": "categorical",
             "preprocess": "convert_to_bucket"},
            {"name": CAT_FIELDS, "active": True, "dtype": "str", "type": "categorical"},
        ],
        label_col={"name": "label", "dtype": "float"},
        dataset_id="criteo_bench",
        data_root=args.work,
    )
    build_dataset(
        processor, train_data=args.train, valid_data=args.valid, test_data=args.test,
        min_categr_count=args.min_count, data_format="csv", sep="\t",
    )
    seconds = time.perf_counter() - start
    print("RESULT " + json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
