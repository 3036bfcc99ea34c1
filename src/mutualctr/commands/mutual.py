"""``mutualctr mutual``: train N models together by mutual learning (Yilmaz & Aldemir, 2024).

Finetuning pretrained runs (the paper's method; learning rate 7e-4, one epoch by default)::

    mutualctr mutual --data DIR --init RUN1 RUN2 RUN3 RUN4 --out RUN

From scratch (the paper's RQ1; learning rate 1e-3)::

    mutualctr mutual --data DIR --models deepfm,dcn,pnn,fibinet --out RUN

``metrics.json`` holds every member's valid and test metrics, the mean ensemble's and, for
finetuned members, RelaImp against their starting runs. Re-running on ``--out`` resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mutualctr.config import load_config
from mutualctr.errors import ConfigError
from mutualctr.training.mutual_learning import FINETUNE_LR, GroupRunConfig, train_group


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mutual",
        help="train N models together by mutual learning (from scratch or as finetuning)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--data", help="encoded store folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--init", nargs="+", metavar="RUN",
                        help="pretrained run folders to finetune (RUN or RUN:member)")
    source.add_argument("--models", help="comma-separated registry models, from scratch")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--config", help="YAML config (keys: data, members, objective, weight, "
                        "divergence, batched, train)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--weight", type=float, help="w, the mutual term's weight (default 1)")
    parser.add_argument("--divergence", choices=("mse", "kl"),
                        help="mse (the paper, default) or kl (the original DML)")
    parser.add_argument("--independent", action="store_true",
                        help="control: train the same group without the mutual term")
    parser.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=E")
    parser.add_argument("--lr", type=float,
                        help=f"learning rate (default {FINETUNE_LR} with --init, else 1e-3)")
    parser.add_argument("--seed", type=int, help="shorthand for --set train.seed=S")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in --out even if it holds a run with another config")
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> GroupRunConfig:
    extra: dict[str, Any] = {}
    if args.data is not None:
        extra["data"] = str(Path(args.data).resolve())
    if args.init:
        extra["members"] = [{"init": str(Path(r).resolve())} for r in args.init]
    elif args.models:
        extra["members"] = [{"model": m.strip()} for m in args.models.split(",") if m.strip()]
    for key in ("weight", "divergence"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    if args.independent:
        extra["objective"] = "independent"
    train = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed), ("lr", args.lr))
             if v is not None}
    if args.init and args.lr is None:
        train["lr"] = FINETUNE_LR
    if train:
        extra["train"] = train
    config = load_config(GroupRunConfig, args.config, args.set, extra=extra)
    if not config.members:
        raise ConfigError("no members: give --init RUN ... or --models a,b,...")
    return config


def run(args: argparse.Namespace) -> int:
    result = train_group(resolve_config(args), args.out, overwrite=args.overwrite)
    print(json.dumps(result.metrics, indent=2))
    return 0
