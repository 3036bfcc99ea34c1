"""``mutualctr evaluate RUN``: metrics of a finished run's final weights on its store's splits."""

from __future__ import annotations

import argparse
import json

import numpy as np

from mutualctr.data.schema import FeatureMap
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.metrics import binary_metrics, ranking_metrics
from mutualctr.runs.restore import load_trained
from mutualctr.training.trainer import predict_split, resolve_device


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
    parser.add_argument("--splits", nargs="+", default=["valid", "test"])
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--gauc-by", metavar="FIELD",
                        help="also report gAUC grouped by this categorical field (e.g. user), "
                        "weighted by impressions (gauc_impressions) and by users (gauc_users)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    trained = load_trained(args.run)
    store = EncodedStore.open(args.data or trained.config["data"])
    trained.require_feature_map(store.feature_map)
    device = resolve_device("auto")
    trained.group.to(device)
    trained.objective.to(device)
    group_column = _categorical_index(store.feature_map, args.gauc_by) if args.gauc_by else None
    background_rate = training_positive_rate(store)
    result = {}
    for name in args.splits:
        split = store.split(name)
        predictions = predict_split(trained.group, trained.objective, split, args.batch_size,
                                    device)
        labels = np.asarray(split.label)
        groups = None if group_column is None else np.asarray(split.categorical[:, group_column])
        result[name] = {
            k: {**binary_metrics(labels, p), **ranking_metrics(labels, p, groups, background_rate)}
            for k, p in predictions.items()
        }
    print(json.dumps(result, indent=2))
    return 0


def _categorical_index(feature_map: FeatureMap, field: str) -> int:
    names = [f.name for f in feature_map.categorical]
    if field not in names:
        raise ConfigError(f"--gauc-by {field!r}: not a categorical field (have {names})")
    return names.index(field)
