"""``mutualctr tune``: search a training command's config with Optuna (see
:mod:`mutualctr.tuning.study`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mutualctr.cli_config import (
    absolute,
    add_config_arguments,
    flag_values,
    print_config,
    resolve_config,
    stored_config,
)
from mutualctr.tuning.space import TuneConfig
from mutualctr.tuning.study import TUNE_FILE, tune


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="search a training command's settings with Optuna (TPE, pruning)",
        description="Run trials of `mutualctr <method>` over a search space; each trial is a "
                    "run folder under OUT/trials/, the best config goes to OUT/best.yaml. "
                    "Re-running continues the study.",
    )
    parser.add_argument("--data", help="encoded store folder (alias of `base.data`)")
    parser.add_argument("--out", required=True, type=Path,
                        help="study folder: tune.yaml, study.db, trials/, best.yaml, trials.png")
    parser.add_argument("--epochs", type=int, help="alias of base.train.epochs")
    parser.add_argument("--trials", type=int, help="alias of trials")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage shared between machines, e.g. "
                             "postgresql://host/db (default: sqlite OUT/study.db)")
    add_config_arguments(parser, keys="method, base, metric, trials, seed, study, space")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = flag_values({"base.data": absolute(args.data), "base.train.epochs": args.epochs,
                         "trials": args.trials})
    stored = stored_config(args.out, None, TUNE_FILE) if args.resume else None
    config = resolve_config(TuneConfig, args, flags, stored=stored)
    if args.print_config:
        print_config(config)
        return 0
    tune(config, args.out, storage=args.storage, overwrite=args.overwrite)
    return 0
