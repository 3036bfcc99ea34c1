"""Evaluation metrics for click-through-rate prediction.

All functions take numpy-compatible 1-D arrays of labels in {0, 1} and predicted click
probabilities, and compute in float64.

* :func:`auc`: exact ROC AUC via the Mann-Whitney U statistic with average ranks for tied
  scores (identical to ``sklearn.metrics.roc_auc_score``), O(n log n).
* :func:`gauc`: group AUC, the per-group AUCs averaged with one of two weightings:
  ``impressions`` (Zhou et al., "Deep Interest Network", KDD 2018, eq. 9, and FuxiCTR's
  ``gAUC``: each group weighted by its rows) or ``users`` (the plain mean over groups, as the
  CETNet paper's section 4.1.4 describes it and FuxiCTR's ``avgAUC`` computes); groups holding
  only one class are skipped. :func:`gaucs` gives both from one sort, keyed by
  :data:`GAUC_KEYS`.
* :func:`logloss`: binary cross-entropy with predictions clipped to ``[eps, 1 - eps]``.
* :func:`normalized_entropy`: logloss divided by the entropy of the *background* click rate,
  the positive rate of the training set (He et al., "Practical Lessons from Predicting Clicks
  on Ads at Facebook", 2014, section 2), not of the evaluated rows.
* :func:`relaimp`: ``(AUC - 0.5) / (AUC_base - 0.5) - 1`` (Yan et al., 2014; used by the
  mutual-learning paper to compare against a baseline model).

Undefined values: AUC of a set with a single class, gAUC without a two-class group and normalized
entropy with a background rate of 0 or 1 are returned as ``nan`` with an
:class:`UndefinedMetricWarning`; an empty input raises :class:`~mutualctr.errors.DataError`.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from mutualctr.errors import DataError

LOGLOSS_EPS = 1e-7
GAUC_WEIGHTINGS: tuple[str, ...] = ("impressions", "users")
GAUC_KEYS: tuple[str, ...] = tuple(f"gauc_{w}" for w in GAUC_WEIGHTINGS)
GaucWeighting = Literal["impressions", "users"]


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined on this input (e.g. AUC with one class) and was returned as NaN."""


def _as_arrays(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {y.size} vs {p.size}")
    if y.size == 0:
        raise DataError("cannot compute metrics on an empty set of rows")
    return y, p


def _grouped_auc(
    y: np.ndarray, p: np.ndarray, group: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """AUC of every group (NaN where a group has one class) and the groups' sizes.

    ``group=None`` means all rows form one group.

    Rows are sorted by (group, score); tied scores within a group share their average rank,
    and the Mann-Whitney statistic ``U = R_pos - n_pos (n_pos + 1) / 2`` gives
    ``AUC = U / (n_pos n_neg)``.
    """
    if group is None:  # one group: a plain sort is much cheaper than lexsort
        order = np.argsort(p)
        g = np.zeros(p.size, dtype=np.int8)
    else:
        order = np.lexsort((p, group))
        g = group[order]
    s, yy = p[order], y[order]
    n = g.size
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    group_id = np.cumsum(np.r_[True, g[1:] != g[:-1]]) - 1
    run_start = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])])
    run_end = np.r_[run_start[1:], n]
    # 1-based rank inside the group, averaged over each run of tied scores
    run_rank = (run_start + run_end + 1) / 2.0 - group_start[group_id[run_start]]
    rank = np.repeat(run_rank, run_end - run_start)
    sizes = np.bincount(group_id).astype(np.float64)
    n_pos = np.bincount(group_id, weights=yy, minlength=sizes.size)
    n_neg = sizes - n_pos
    rank_pos = np.bincount(group_id, weights=rank * yy, minlength=sizes.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = (rank_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    aucs[(n_pos == 0) | (n_neg == 0)] = np.nan
    return aucs, sizes


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Exact ROC AUC, ties counted as half; NaN with a warning when only one class is present."""
    y, p = _as_arrays(y_true, y_score)
    value = float(_grouped_auc(y, p, None)[0][0])
    if math.isnan(value):
        warnings.warn(
            f"AUC is undefined: all {y.size} labels are {int(y[0])}; returning nan",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    return value


def _two_class_group_aucs(
    y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """AUC and size of every group holding both classes (warns when there is none)."""
    y, p = _as_arrays(y_true, y_score)
    g = np.asarray(groups).reshape(-1)
    if g.shape != y.shape:
        raise ValueError(f"groups and labels differ in length: {g.size} vs {y.size}")
    aucs, sizes = _grouped_auc(y, p, g)
    kept = ~np.isnan(aucs)
    if not kept.any():
        warnings.warn(
            "gAUC is undefined: no group contains both clicks and non-clicks; returning nan",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return aucs[kept], sizes[kept]


def _weighted_mean(aucs: np.ndarray, sizes: np.ndarray, weighting: str) -> float:
    if weighting not in GAUC_WEIGHTINGS:
        raise ValueError(f"gAUC weighting must be one of {list(GAUC_WEIGHTINGS)}, "
                         f"got {weighting!r}")
    if aucs.size == 0:
        return math.nan
    if weighting == "users":
        return float(np.mean(aucs))
    return float(np.sum(aucs * sizes) / np.sum(sizes))


def gauc(
    y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike,
    weighting: GaucWeighting = "impressions",
) -> float:
    """Mean of the per-group AUCs over groups that contain both classes, each group weighted by
    its impressions (DIN eq. 9) or equally (``users``: the mean over users)."""
    return _weighted_mean(*_two_class_group_aucs(y_true, y_score, groups), weighting)


def gaucs(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> dict[str, float]:
    """gAUC under both weightings from one sort, keyed by :data:`GAUC_KEYS`
    (``gauc_impressions``, ``gauc_users``)."""
    aucs, sizes = _two_class_group_aucs(y_true, y_score, groups)
    return {key: _weighted_mean(aucs, sizes, w)
            for key, w in zip(GAUC_KEYS, GAUC_WEIGHTINGS, strict=True)}


def logloss(y_true: ArrayLike, y_score: ArrayLike, eps: float = LOGLOSS_EPS) -> float:
    """Mean binary cross-entropy with predictions clipped to ``[eps, 1 - eps]``."""
    y, p = _as_arrays(y_true, y_score)
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def normalized_entropy(
    y_true: ArrayLike, y_score: ArrayLike, background_rate: float, eps: float = LOGLOSS_EPS
) -> float:
    """Logloss divided by the entropy of ``background_rate`` (lower is better; 1 = always
    predicting the background rate).

    He et al. (2014), section 2: the background CTR is the average empirical CTR of the
    *training* set, so give the training split's positive rate, not the evaluated rows'.
    """
    if not 0.0 <= background_rate <= 1.0:
        raise ValueError(f"background_rate must lie in [0, 1], got {background_rate}")
    if background_rate in (0.0, 1.0):
        warnings.warn(
            "normalized entropy is undefined for a background rate of 0 or 1; returning nan",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return math.nan
    rate = background_rate
    base = -(rate * math.log(rate) + (1.0 - rate) * math.log1p(-rate))
    return logloss(y_true, y_score, eps) / base


def relaimp(auc_value: float, base_auc: float) -> float:
    """Relative improvement of an AUC over a baseline's: ``(auc - 0.5) / (base - 0.5) - 1``."""
    if base_auc == 0.5:
        raise ValueError("RelaImp is undefined for a baseline AUC of exactly 0.5")
    return (auc_value - 0.5) / (base_auc - 0.5) - 1.0


def binary_metrics(y_true: ArrayLike, y_score: ArrayLike) -> dict[str, float]:
    """The metrics the trainer reports for every named prediction: AUC and logloss."""
    return {"auc": auc(y_true, y_score), "logloss": logloss(y_true, y_score)}


def ranking_metrics(
    labels: np.ndarray, prediction: np.ndarray, groups: np.ndarray | None,
    background_rate: float,
) -> dict[str, float]:
    """NE against ``background_rate`` and, given ``groups``, gAUC under both weightings
    (:data:`GAUC_KEYS`); ``evaluate`` and CETNet's ``metrics.json`` use it."""
    grouped = {} if groups is None else gaucs(labels, prediction, groups)
    return {**grouped, "normalized_entropy": normalized_entropy(
        labels, prediction, background_rate)}
