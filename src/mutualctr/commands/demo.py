"""``mutualctr demo``: the project's main job in one command, on a laptop.

1. Synthetic Criteo-format click logs from a hidden ground-truth model (embedded, no download;
   :mod:`mutualctr.data.synthetic`), encoded into a store (80/10/10 random split).
2. A small ``experiment yilmaz`` with the paper's recipe at a small size: independent runs of
   two architectures (two seeds) pretrained with early stopping (at most two epochs here),
   mutual learning from scratch (RQ1) and one epoch of mutual finetuning of the independent
   runs with its control (RQ2), all under the paper's exponential schedule.
3. The report's tables, printed (and written to ``OUT/experiment/report.md``).

Re-running reuses the data and every finished run. Defaults take a minute or two on two CPU
cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mutualctr.cli_config import add_config_arguments, add_flags, experiment_config, flag_overrides
from mutualctr.data.prepare import prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.synthetic import generate_criteo_synthetic
from mutualctr.experiments import yilmaz
from mutualctr.experiments.yilmaz.plan import YilmazConfig

DEFAULT_ROWS = 200_000
# what the demo changes from the experiment's defaults: two architectures, two seeds, RQ1 and
# RQ2, batches of 1000 (enough steps for 200k rows; the paper used 4000 on 36M) and pretraining
# of at most two epochs with patience 1 (the same early-stopping recipe, smaller)
DEMO_SETTINGS: dict[str, Any] = {
    "models": ["deepfm", "dcn"], "seeds": 2, "questions": [1, 2], "max_group": 2,
    "train": {"batch_size": 1000, "num_threads": 2, "epochs": 2,
              "early_stopping": {"patience": 1}},
    "finetune": {"batch_size": 1000, "num_threads": 2},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="synthetic data, models trained alone and together, the results table",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--out", type=Path, default=Path("mutualctr-demo"),
                        help="folder for the data, runs and report (default ./mutualctr-demo)")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="synthetic rows")
    parser.add_argument("--seeds", type=int, help="independent runs per model (default 2)")
    parser.add_argument("--epochs", type=int, help="pretraining's maximum epochs (alias of "
                        "train.epochs; default 2)")
    # the experiment's shorthand flags
    add_flags(parser, yilmaz.EXPERIMENT.flags, yilmaz.EXPERIMENT.config_class)
    add_config_arguments(parser, keys=yilmaz.EXPERIMENT.keys)
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
        # written through mutualctr.files: each file appears only once complete, the raw last
        generate_criteo_synthetic(raw, rows, seed=0, probs_out=probs)
    say("encoding them into a store (80/10/10 split, vocabularies fitted on train)")
    store_dir = out / f"store-{rows}"
    result = prepare([raw], store_dir, "criteo", probs=probs, overwrite=True,
                     reader_options=ReaderOptions(criteo_numeric=True))
    splits = result.store.meta["splits"]
    say("splits: " + ", ".join(f"{n} {s['rows']:,} rows" for n, s in splits.items()))
    return store_dir


def _demo_settings(given: Mapping[str, Any]) -> Mapping[str, Any]:
    return DEMO_SETTINGS


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    root = args.out
    args.data, args.out = root / f"store-{args.rows}", root / "experiment"
    config = experiment_config(YilmazConfig, args,
                               flag_overrides(args, yilmaz.EXPERIMENT.flags)[0],
                               presets=_demo_settings)
    if config is None:
        return 0
    synthetic_store(root, args.rows)
    say(f"experiment yilmaz (RQ1, RQ2) with {', '.join(config.models)}, "
        f"{config.seeds} seeds; per-epoch progress below")
    report = yilmaz.run(config, args.out, overwrite=args.overwrite)
    print()
    print(report)
    say(f"done in {time.perf_counter() - start:.0f} s; report, results.csv and plots in "
        f"{args.out}")
    return 0
