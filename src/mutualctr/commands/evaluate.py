"""``mutualctr evaluate RUN``: metrics of a finished run's final weights on its store's splits
(``serving.InferenceRun.evaluate``), with gAUC grouped by the run's user field
(``training.users``) as in its ``metrics.json``."""

from __future__ import annotations

import argparse
import json

from mutualctr.serving.inference import DEFAULT_BATCH_SIZE, DEFAULT_SPLITS, InferenceRun


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="AUC, logloss and NE of a trained run on the valid and test splits",
        description="Rebuild a run's models from RUN/model.json and RUN/model.pt and evaluate "
        "them; prints metrics.json-shaped JSON (metrics keyed by split, then prediction). "
        "NE is normalized by the entropy of the store's training positive rate.",
    )
    parser.add_argument("run", help="run folder written by `mutualctr train`")
    parser.add_argument("--data", help="encoded store (default: the one the run trained on); "
                        "it must have the same feature map")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS))
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--gauc-by", metavar="FIELD",
                        help="report gAUC, weighted by impressions (gauc_impressions) and by "
                        "users (gauc_users), grouped by this categorical field; auto: the "
                        "store's user field, '': no gAUC (default: the run's train.user_field, "
                        "as in its metrics.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inference = InferenceRun.open(args.run, args.data)
    result = inference.evaluate(args.splits, args.batch_size, args.gauc_by)
    print(json.dumps(result, indent=2))
    return 0
