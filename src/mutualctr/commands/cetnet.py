"""``mutualctr cetnet``: train one CETNet group (Liu et al.) on an encoded store.

``mutualctr cetnet --data DIR --models dcnv2,finalmlp --out RUN`` builds one model per name,
each with its own embedding table, fuses them by confidence and trains them with
``BCE(fused) + sum_n BCE(p_n) + alpha * symmetric KL``. The run folder gets the trainer's files
plus ``cetnet_metrics.json`` (AUC, gAUC by user where the data has a user field, logloss of the
fused prediction and of every member). Flags select the paper's ablations.
"""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import asdict
from pathlib import Path

from mutualctr.config import load_config
from mutualctr.data.store import EncodedStore
from mutualctr.experiments.cetnet import (
    RESULTS_FILE,
    CETNetExperimentConfig,
    group_ids,
    train_and_score,
)
from mutualctr.training.cetnet_group import Variant, build_cetnet
from mutualctr.training.objectives.cetnet import FUSION_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cetnet",
        help="train a CETNet group: per-model embeddings, confidence fusion, symmetric KL",
        description="Train N models with their own embeddings under CETNet's objective.",
    )
    parser.add_argument("--data", required=True, help="encoded store folder")
    parser.add_argument("--models", required=True,
                        help="comma-separated registry names, e.g. dcnv2,finalmlp")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the symmetric KL")
    parser.add_argument("--embedding-dim", type=int, default=16, help="each model's table size")
    parser.add_argument("--fusion", default="confidence", choices=FUSION_MODES)
    parser.add_argument("--shared-embedding", action="store_true",
                        help="ablation: one table shared by all models")
    parser.add_argument("--no-stop-gradient", action="store_true",
                        help="ablation: let gradients flow through the confidences")
    parser.add_argument("--no-member-losses", action="store_true",
                        help="train only the fused prediction (the '+ concat' baselines)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--config", help="YAML with model_config / train / group_field keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over if --out holds a run with another config")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extra = {"data": str(Path(args.data).resolve()), "alpha": args.alpha,
             "embedding_dim": args.embedding_dim}
    config = load_config(CETNetExperimentConfig, args.config, args.set, extra=extra)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variant = Variant(
        "cli", shared_embedding=args.shared_embedding, fusion=args.fusion,
        stop_gradient=not args.no_stop_gradient, member_losses=not args.no_member_losses,
    )
    build = functools.partial(build_cetnet, models=models, embedding_dim=config.embedding_dim,
                              alpha=config.alpha, variant=variant, overrides=config.model_config)
    store = EncodedStore.open(config.data)
    description = {"command": "cetnet", "models": models, "variant": asdict(variant)}
    record = train_and_score(build, store, config, args.seed, args.out,
                             group_ids(store, config.group_field), description, args.overwrite)
    (args.out / RESULTS_FILE).write_text(json.dumps(record, indent=2))
    print(json.dumps(record["test"], indent=2))
    return 0
