"""``mutualctr demo``: the project's main job in one command, on a laptop.

1. Synthetic Criteo-format click logs from a hidden ground-truth model (embedded, no download;
   :mod:`mutualctr.data.synthetic`), encoded into a store (80/10/10 random split).
2. ``mutualctr compare`` of DeepFM and DCN at a small size (one seed): each alone, their
   ensemble, a distilled student, mutual learning from scratch and as finetuning with its
   control, EKTF and CETNet, with what each costs to train and to serve
   (:mod:`mutualctr.comparison`).
3. The comparison's table and recommendation, printed (and written to
   ``OUT/comparison/report.md``, with ``results.json`` and ``comparison.png``).

Re-running reuses the data and every finished run. Defaults take a few minutes on two CPU
cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mutualctr.cli_config import add_config_arguments, add_flags, experiment_config, flag_overrides
from mutualctr.comparison import COMPARISON
from mutualctr.comparison.plan import CompareConfig
from mutualctr.data.prepare import prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.synthetic import generate_criteo_synthetic

DEFAULT_ROWS = 200_000
# what the demo changes from the comparison's defaults: one seed, batches of 1000 (enough steps
# for 200k rows) and at most three epochs (the same early stopping, smaller)
DEMO_SETTINGS: dict[str, Any] = {
    "models": ["deepfm", "dcn"], "seeds": 1,
    "train": {"batch_size": 1000, "num_threads": 2, "epochs": 3},
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
    parser.add_argument("--seeds", type=int, help="independent replicates (default 1)")
    parser.add_argument("--epochs", type=int, help="each run's maximum epochs (alias of "
                        "train.epochs; default 3)")
    # the comparison's shorthand flags
    add_flags(parser, COMPARISON.flags, COMPARISON.config_class)
    add_config_arguments(parser, keys=COMPARISON.keys)
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
    args.data, args.out = root / f"store-{args.rows}", root / "comparison"
    config = experiment_config(CompareConfig, args, flag_overrides(args, COMPARISON.flags)[0],
                               presets=_demo_settings)
    if config is None:
        return 0
    synthetic_store(root, args.rows)
    say(f"compare {', '.join(config.models)}: alone, ensemble, distilled, mutual, EKTF, "
        f"CETNet; {config.seeds} seed(s), per-epoch progress below")
    report = COMPARISON.run(config, args.out, overwrite=args.overwrite)
    print()
    print(report)
    say(f"done in {time.perf_counter() - start:.0f} s; report.md, results.json and "
        f"comparison.png in {args.out}")
    return 0
