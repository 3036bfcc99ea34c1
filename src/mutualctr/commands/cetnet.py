"""``mutualctr cetnet``: train one CETNet group (Liu et al.) on an encoded store.

``mutualctr cetnet --data DIR --models dcnv2 finalmlp --out RUN`` builds one model per name,
each with its own embedding table, fuses them by confidence and trains them with
``BCE(fused) + sum_n BCE(p_n) + alpha * symmetric KL``. ``metrics.json`` holds AUC, gAUC by user
(where the data has a user field) and logloss of the fused prediction and of every member.
Flags select the paper's ablations.
"""

from __future__ import annotations

import argparse

from mutualctr.cli_config import add_run_arguments, run_method_command
from mutualctr.methods import cetnet
from mutualctr.training.objectives.cetnet import FUSION_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cetnet",
        help="train a CETNet group: per-model embeddings, confidence fusion, symmetric KL",
        description="Train N models with their own embeddings under CETNet's objective.",
    )
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="registry names, e.g. dcnv2 finalmlp (alias of `models`)")
    parser.add_argument("--alpha", type=float, help="weight of the symmetric KL (alias of "
                        "`alpha`, default 0.1)")
    parser.add_argument("--embedding-dim", type=int,
                        help="each model's table size (alias of `embedding_dim`, default 16)")
    parser.add_argument("--fusion", choices=FUSION_MODES, help="alias of `fusion`")
    parser.add_argument("--shared-embedding", action="store_const", const=True,
                        help="ablation: one table shared by all models")
    parser.add_argument("--no-stop-gradient", action="store_const", const=False,
                        dest="stop_gradient",
                        help="ablation: let gradients flow through the confidences")
    parser.add_argument("--no-member-losses", action="store_const", const=False,
                        dest="member_losses",
                        help="train only the fused prediction (the '+ concat' baselines)")
    add_run_arguments(parser, keys="data, models, embedding_dim, alpha, fusion, use_kl, "
                      "stop_gradient, member_losses, shared_embedding, group_field, "
                      "model_config, train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = {"models": args.models, "alpha": args.alpha, "embedding_dim": args.embedding_dim,
             "fusion": args.fusion, "shared_embedding": args.shared_embedding,
             "stop_gradient": args.stop_gradient, "member_losses": args.member_losses}
    return run_method_command(args, cetnet.METHOD, flags)
