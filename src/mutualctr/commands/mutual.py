"""``mutualctr mutual``: train N models together by mutual learning (Yilmaz & Aldemir, 2024).

Finetuning pretrained runs (the paper's method; learning rate 7e-4, one epoch by default)::

    mutualctr mutual --data DIR --init RUN1 RUN2 RUN3 RUN4 --out RUN

From scratch (the paper's RQ1; learning rate 1e-3)::

    mutualctr mutual --data DIR --models deepfm dcn pnn fibinet --out RUN

``metrics.json`` holds every member's valid and test metrics, the mean ensemble's and, for
finetuned members, RelaImp against their starting runs. Re-running on ``--out`` resumes.
"""

from __future__ import annotations

import argparse
from typing import Any

from mutualctr.cli_config import absolute, add_run_arguments, run_method_command
from mutualctr.methods import mutual


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mutual",
        help="train N models together by mutual learning (from scratch or as finetuning)",
        description=__doc__.split("\n\n")[0],
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--init", nargs="+", metavar="RUN",
                        help="pretrained run folders to finetune, RUN or RUN:member (alias of "
                             "`members: [{init: RUN}, ...]`; implies train.lr=7e-4 unless "
                             "--lr or --set train.lr is given)")
    source.add_argument("--models", nargs="+", metavar="MODEL",
                        help="registry models trained from scratch (alias of "
                             "`members: [{model: MODEL}, ...]`)")
    parser.add_argument("--weight", type=float, help="w, the mutual term's weight (alias of "
                        "`weight`, default 1)")
    parser.add_argument("--divergence", choices=("mse", "kl"),
                        help="mse (the paper, default) or kl (the original DML)")
    parser.add_argument("--independent", action="store_true",
                        help="control: the same group without the mutual term (alias of "
                             "`objective: independent`)")
    parser.add_argument("--lr", type=float, help="alias of train.lr")
    add_run_arguments(parser, keys="data, members, objective, weight, divergence, batched, "
                      "train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    members = None
    if args.init:
        members = [{"init": absolute(r)} for r in args.init]
    elif args.models:
        members = [{"model": m} for m in args.models]
    lr = mutual.FINETUNE_LR if args.init and args.lr is None else args.lr
    flags: dict[str, Any] = {
        "members": members, "weight": args.weight, "divergence": args.divergence,
        "objective": "independent" if args.independent else None, "train.lr": lr,
    }
    return run_method_command(args, mutual.METHOD, flags)
