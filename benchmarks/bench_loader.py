"""BatchLoader throughput: rows per second into batches, from a memory-mapped store on disk.

Writes a Criteo-shaped split (39 categorical int32 fields, label, true probability) of
``--rows`` rows with random ids, then times one epoch unshuffled and shuffled (one epoch
warms the page cache first, as training epochs after the first find it). Target: >= 1M rows/s
at batch 4096 on 2 cores.

    python benchmarks/bench_loader.py --rows 2000000 --batch-size 4096
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mutualctr.data.loader import BatchLoader
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.data.store import (
    META_FILE,
    STORE_FORMAT_VERSION,
    EncodedStore,
    SplitArrays,
    SplitWriter,
)
from mutualctr.files import write_json

FIELDS = 39
VOCAB = 100_000
WRITE_ROWS = 1 << 18


def write_store(root: Path, rows: int, seed: int = 0) -> EncodedStore:
    rng = np.random.default_rng(seed)
    writer = SplitWriter(root / "train", rows, FIELDS, 0, (), with_prob=True)
    for lo in range(0, rows, WRITE_ROWS):
        n = min(WRITE_ROWS, rows - lo)
        writer.append(SplitArrays(
            categorical=rng.integers(0, VOCAB, (n, FIELDS), dtype=np.int32),
            numeric=np.zeros((n, 0), np.float32), sequences=(),
            label=(rng.random(n) < 0.25).astype(np.float32),
            prob=rng.random(n, dtype=np.float32),
        ))
    writer.close()
    fmap = FeatureMap(tuple(Feature(f"C{i}", "categorical", VOCAB) for i in range(FIELDS)))
    write_json(root / META_FILE, {
        "format_version": STORE_FORMAT_VERSION, "feature_map": fmap.to_dict(),
        "splits": {"train": {"rows": rows}},
    })
    return EncodedStore.open(root)


def rows_per_second(loader: BatchLoader, epoch: int) -> float:
    start = time.perf_counter()
    rows = sum(len(batch) for batch in loader.batches(epoch))
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        split = write_store(Path(folder), args.rows).split("train")
        print(f"{args.rows:,} rows x {FIELDS} int32 fields + label + prob, "
              f"batch {args.batch_size}")
        for shuffle in (False, True):
            loader = BatchLoader(split, args.batch_size, shuffle=shuffle, seed=0)
            rows_per_second(loader, 0)  # warm the page cache
            rates = [rows_per_second(loader, epoch) for epoch in range(1, args.repeats + 1)]
            print(f"  shuffle={shuffle!s:<5}  best {max(rates) / 1e6:6.2f} M rows/s   "
                  f"median {np.median(rates) / 1e6:6.2f} M rows/s   (target >= 1.00)")


if __name__ == "__main__":
    main()
