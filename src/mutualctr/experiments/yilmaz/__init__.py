"""``mutualctr experiment yilmaz``: mutual learning for finetuning CTR models (Yilmaz &
Aldemir, 2024), research questions RQ1-RQ4.

The runs are planned and trained by :mod:`.plan`, the report is built from their run folders
by :mod:`.report`, beside the paper's figures (:mod:`.paper`).
"""

from __future__ import annotations

import argparse
from typing import Any

from mutualctr.cli_config import add_experiment_arguments, experiment_config
from mutualctr.experiments.yilmaz.plan import YilmazConfig, YilmazExperiment
from mutualctr.experiments.yilmaz.report import write_report

KEYS = ("data, models, seeds, groups, questions, max_group, control, model_config, train, "
        "finetune")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "yilmaz",
        help="mutual learning for finetuning CTR models (Yilmaz & Aldemir 2024), RQ1-RQ4",
        description=__doc__.split("\n\n")[0],
    )
    add_experiment_arguments(parser, keys=KEYS)
    add_shorthands(parser)
    parser.set_defaults(func=run_command)


def add_shorthands(parser: argparse.ArgumentParser) -> None:
    """The experiment's shorthand flags (shared with ``mutualctr demo``)."""
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="registry models (alias of `models`; default: the paper's four)")
    parser.add_argument("--questions", nargs="+", type=int, metavar="Q",
                        help="which research questions, e.g. 1 2 (alias of `questions`)")
    parser.add_argument("--groups", type=int, help="independent repetitions of RQ1's and "
                        "RQ2's groups, the samples of the paired tests (alias of `groups`)")
    parser.add_argument("--max-group", type=int, help="RQ4's largest group (alias of "
                        "`max_group`)")
    parser.add_argument("--finetune-epochs", type=int, help="alias of finetune.epochs "
                        "(default: the paper's one epoch)")
    parser.add_argument("--batch-size", type=int, help="alias of train.batch_size and "
                        "finetune.batch_size (default: the paper's 4000)")
    parser.add_argument("--threads", type=int, help="torch threads (alias of "
                        "train.num_threads and finetune.num_threads)")
    parser.add_argument("--no-control", action="store_const", const=False, dest="control",
                        help="skip RQ2's control (the same runs finetuned alone)")


def shorthand_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "models": args.models, "questions": args.questions, "groups": args.groups,
        "max_group": args.max_group,
        "control": args.control, "finetune.epochs": args.finetune_epochs,
        "train.batch_size": args.batch_size, "finetune.batch_size": args.batch_size,
        "train.num_threads": args.threads, "finetune.num_threads": args.threads,
    }


def run_command(args: argparse.Namespace) -> int:
    config = experiment_config(YilmazConfig, args, shorthand_values(args))
    if config is None:
        return 0
    YilmazExperiment(config, args.out, overwrite=args.overwrite).run()
    print(write_report(config, args.out))
    return 0
