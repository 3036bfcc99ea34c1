"""``mutualctr train``: train one model from the registry on an encoded store.

Re-running the same command on the same ``--out`` resumes from the last checkpoint, or, once the
run is finished, reuses it; ``--resume`` continues with the config stored in the run folder.
Launched by ``torchrun --nproc_per_node=K -m mutualctr train ...`` it trains data-parallel (see
:mod:`mutualctr.distributed.ddp`).
"""

from __future__ import annotations

import argparse

from mutualctr.cli_config import add_run_arguments, run_method_command
from mutualctr.methods import independent


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one CTR model on an encoded store",
        description="Train a model; metrics, checkpoints and predictions go to --out.",
    )
    parser.add_argument("--model", help="registry model name, e.g. deepfm (alias of `model`)")
    add_run_arguments(parser, keys="model, model_config, data, train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_method_command(args, independent.METHOD, {"model": args.model})
