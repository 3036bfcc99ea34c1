"""``mutualctr demo``: the project's main job in one command, on a laptop.

1. Synthetic Criteo-format click logs from a hidden ground-truth model (embedded, no download;
   :mod:`mutualctr.data.synthetic`), encoded into a store (80/10/10 random split).
2. A small ``experiment yilmaz``: independent runs of two architectures (two seeds), mutual
   learning from scratch (RQ1) and mutual finetuning of the independent runs with its control
   (RQ2).
3. The report's tables, printed (and written to ``OUT/experiment/report.md``).

Re-running reuses the data and every finished run. Defaults fit in about ten minutes on two
CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mutualctr.data.prepare import prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.synthetic import generate_criteo_synthetic
from mutualctr.experiments.yilmaz import YilmazExperiment, settings_from_args
from mutualctr.experiments.yilmaz_report import write_report

DEFAULT_ROWS = 200_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="synthetic data, models trained alone and together, the results table",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--out", type=Path, default=Path("mutualctr-demo"),
                        help="folder for the data, runs and report (default ./mutualctr-demo)")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="synthetic rows")
    parser.add_argument("--models", default="deepfm,dcn", help="comma-separated models")
    parser.add_argument("--seeds", type=int, default=2, help="independent runs per model")
    parser.add_argument("--epochs", type=int, default=1, help="pretraining epochs")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="1000: enough steps for 200k rows (the paper used 4000 on 36M)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                        help="hyperparameter for every model, e.g. hidden_units=[64,32]")
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def synthetic_store(out: Path, rows: int) -> Path:
    """Generate (once) ``rows`` synthetic rows and encode them; returns the store folder."""
    raw = out / f"synthetic-{rows}.tsv"
    probs = out / f"synthetic-{rows}.probs"
    if not (raw.is_file() and probs.is_file()):
        say(f"generating {rows:,} synthetic Criteo-format rows (hidden ground-truth model)")
        out.mkdir(parents=True, exist_ok=True)
        tmp_raw, tmp_probs = raw.with_suffix(".tsv.tmp"), probs.with_suffix(".probs.tmp")
        generate_criteo_synthetic(tmp_raw, rows, seed=0, probs_out=tmp_probs)
        os.replace(tmp_probs, probs)
        os.replace(tmp_raw, raw)
    say("encoding them into a store (80/10/10 split, vocabularies fitted on train)")
    store_dir = out / f"store-{rows}"
    result = prepare([raw], store_dir, "criteo", probs=probs, overwrite=True,
                     reader_options=ReaderOptions(criteo_numeric=True))
    splits = result.store.meta["splits"]
    say("splits: " + ", ".join(f"{n} {s['rows']:,} rows" for n, s in splits.items()))
    return store_dir


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    store = synthetic_store(args.out, args.rows)
    args.data, args.out = store, args.out / "experiment"
    args.questions, args.max_group, args.no_control, args.overwrite = "1,2", 2, False, False
    args.finetune_epochs = 1
    settings = settings_from_args(args)
    say(f"experiment yilmaz (RQ1, RQ2) with {', '.join(settings.models)}, "
        f"{settings.seeds} seeds; per-epoch progress below")
    YilmazExperiment(settings).run()
    report = write_report(settings)
    print()
    print(report)
    say(f"done in {time.perf_counter() - start:.0f} s; report, results.csv and plots in "
        f"{settings.out}")
    return 0
