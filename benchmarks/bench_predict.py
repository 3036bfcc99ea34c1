"""Prediction: peak memory and speed of ``mutualctr predict`` as the input grows.

On Criteo-format rows from the synthetic generator (seed 0) this script prepares a store from
``--rows`` rows, trains a logistic regression on it for one epoch, then runs the command
``mutualctr predict RUN --input FILE --out preds.csv`` on the ``--rows`` file and on the
``--big-rows`` file, and prints each run's wall time, rows per second and peak resident memory
(whole process, ``wait4``; interpreter, torch and the model included). ``predict`` streams
(read, encode, score, write one reader chunk at a time), so the peak RSS ratio should stay
near 1 however many rows the file has.

Usage::

    python benchmarks/bench_predict.py --rows 200000 --big-rows 2000000 --work "$WORK/bench"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_preprocess import run_measured, synth_file


def mutualctr(*args: str) -> list[str]:
    return [sys.executable, "-m", "mutualctr", *args]


def trained_run(raw: Path, work: Path) -> Path:
    """A store prepared from ``raw`` and a logistic regression trained on it for one epoch."""
    store, run = work / f"store_{raw.stem}", work / f"run_{raw.stem}"
    run_measured(mutualctr("data", "prepare", "--format", "criteo", str(raw), "--out",
                           str(store), "--overwrite"), work / "prepare")
    run_measured(mutualctr("train", "--data", str(store), "--model", "lr", "--out", str(run),
                           "--epochs", "1", "--set", "train.batch_size=4096", "--overwrite"),
                 work / "train")
    return run


def predict(run: Path, raw: Path, work: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``mutualctr predict`` on ``raw``."""
    out = work / f"preds_{raw.stem}.csv"
    seconds, rss, _ = run_measured(
        mutualctr("predict", str(run), "--input", str(raw), "--out", str(out)),
        work / f"predict_{raw.stem}",
    )
    out.unlink()
    return seconds, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--big-rows", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_bench_predict",
                        help="scratch folder (default in the system temp folder)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    small, big = synth_file(args.work, args.rows), synth_file(args.work, args.big_rows)
    run = trained_run(small, args.work)
    measured = {}
    for rows, raw in ((args.rows, small), (args.big_rows, big)):
        seconds, rss = predict(run, raw, args.work)
        measured[rows] = rss
        print(f"rows {rows:>10,d}  load average {os.getloadavg()[0]:4.1f}  "
              f"mutualctr predict (command, wall) {seconds:7.2f} s  "
              f"{rows / seconds:>9,.0f} rows/s  peak RSS {rss:.0f} MiB")
    print(f"peak RSS ratio {args.big_rows:,d} / {args.rows:,d} rows: "
          f"{measured[args.big_rows] / measured[args.rows]:.2f}   (target <= 1.2)")


if __name__ == "__main__":
    main()
