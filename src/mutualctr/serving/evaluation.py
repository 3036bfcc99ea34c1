"""The metrics ``mutualctr evaluate`` reports for one split: per named prediction, AUC and
logloss (``metrics.binary_metrics``), normalized entropy and, grouped by a categorical field,
gAUC (``metrics.ranking_metrics``)."""

from __future__ import annotations

import numpy as np

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.metrics import binary_metrics, ranking_metrics


def categorical_index(feature_map: FeatureMap, field: str, option: str = "gauc_by") -> int:
    """The column of categorical ``field`` in the encoded ``categorical`` array; ``option``
    names the setting that gave the field, for the error when it is not one."""
    names = [f.name for f in feature_map.categorical]
    if field not in names:
        raise ConfigError(f"{option} {field!r}: not a categorical field (have {names})")
    return names.index(field)


def split_metrics(
    split: SplitArrays, predictions: dict[str, np.ndarray], background_rate: float,
    group_column: int | None = None,
) -> dict[str, dict[str, float]]:
    """Per named prediction of ``split``'s rows, its metrics: AUC, logloss, NE against
    ``background_rate`` (the training positive rate) and, when ``group_column`` (of the
    categorical array) is given, the gAUCs grouped by that field."""
    labels = np.asarray(split.label)
    groups = None if group_column is None else np.asarray(split.categorical[:, group_column])
    return {
        name: {**binary_metrics(labels, p), **ranking_metrics(labels, p, groups, background_rate)}
        for name, p in predictions.items()
    }
