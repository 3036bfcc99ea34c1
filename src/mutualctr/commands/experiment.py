"""``mutualctr experiment NAME``: run a recipe that reproduces a paper's questions, and
``mutualctr experiment curves``: the learning curves of run folders.

Every experiment of :mod:`mutualctr.experiments` (``yilmaz``, ``ektf``, ``cetnet``) is a
sub-command built here from its declaration (:class:`~mutualctr.experiments.base.Experiment`):
the options every experiment takes (:func:`mutualctr.cli_config.add_experiment_arguments`), its
shorthand flags (:func:`mutualctr.cli_config.add_flags`) and ``--report-only`` where it offers
one.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from mutualctr.cli_config import (
    add_experiment_arguments,
    add_flags,
    experiment_config,
    flag_overrides,
)
from mutualctr.experiments import experiment_names, get_experiment
from mutualctr.experiments.base import Experiment
from mutualctr.experiments.curves import curves_table, learning_curves, plot_curves


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce a paper's experiments and write a report",
        description="Run a recipe that reproduces a paper's research questions.",
    )
    names = parser.add_subparsers(dest="experiment", required=True, metavar="NAME")
    for name in sorted([*experiment_names(), "curves"]):
        if name == "curves":
            add_curves(names)
        else:
            add_experiment(names, get_experiment(name))


def add_experiment(names: argparse._SubParsersAction, experiment: Experiment[Any]) -> None:
    """``mutualctr experiment <name>``."""
    parser = names.add_parser(experiment.name, help=experiment.help,
                              description=experiment.description)
    add_experiment_arguments(parser, keys=experiment.keys)
    add_flags(parser, experiment.flags, experiment.config_class)
    if experiment.report_only:
        parser.add_argument("--report-only", action="store_true",
                            help="only rebuild OUT/report.md and OUT/results.csv from the run "
                                 "folders")
    if experiment.dry_run is not None:
        parser.add_argument("--dry-run", action="store_true",
                            help="print the plan and an estimate of its time; train and write "
                                 "nothing")
    parser.set_defaults(func=partial(run_experiment, experiment=experiment))


def run_experiment(args: argparse.Namespace, *, experiment: Experiment[Any]) -> int:
    """Resolve the experiment's config (stored as ``OUT/experiment.yaml``), run it (or only
    rebuild its report, or only print its plan) and print the report."""
    dry = getattr(args, "dry_run", False)
    config = experiment_config(experiment.config_class, args,
                               flag_overrides(args, experiment.flags)[0],
                               presets=experiment.presets, save=not dry)
    if config is None:
        return 0
    if dry and experiment.dry_run is not None:
        print(experiment.dry_run(config, args.out))
    elif getattr(args, "report_only", False):
        print(experiment.report(config, args.out))
    else:
        print(experiment.run(config, args.out, overwrite=args.overwrite))
    return 0


def add_curves(names: argparse._SubParsersAction) -> None:
    """``mutualctr experiment curves RUN [RUN ...] --out PNG``."""
    parser = names.add_parser(
        "curves", help="validation AUC per epoch of run folders: a table and a plot",
        description="Learning curves: validation AUC per epoch, read from run folders' "
                    "metrics.jsonl; prints a table (with each run's best epoch) and writes a "
                    "plot.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--title", default="Validation AUC per epoch")
    parser.set_defaults(func=run_curves)


def run_curves(args: argparse.Namespace) -> int:
    curves = [c for run in args.runs for c in learning_curves(run)]
    plot_curves(args.out, curves, args.title)
    print(curves_table(curves))
    return 0
