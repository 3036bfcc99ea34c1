"""Metrics against scikit-learn and hand-computed values, ties and degenerate inputs included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from data_files import TINY_TRAINING
from mutualctr import metrics
from mutualctr.cli import main
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError
from mutualctr.training import users
from training_support import SEQUENCE_FEATURE_MAP, sequence_split, write_store


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    y = rng.integers(0, 2, n)
    # few distinct values -> many ties; bias scores towards the label so AUC is not ~0.5
    score = np.round(rng.random(n) * 0.7 + 0.3 * y, decimals=1)
    assert metrics.auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_auc_hand_computed() -> None:
    # pairs (pos, neg): (0.8,0.1)=1 (0.8,0.4)=1 (0.8,0.8)=0.5 (0.4,0.1)=1 (0.4,0.4)=0.5 (0.4,0.8)=0
    y = [1, 0, 1, 0, 0]
    p = [0.8, 0.1, 0.4, 0.4, 0.8]
    assert metrics.auc(y, p) == pytest.approx(4.0 / 6.0)


def test_logloss_matches_sklearn_and_clips() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = rng.random(500)
    assert metrics.logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-12)
    # a confident mistake costs -log(1e-7), not infinity
    assert metrics.logloss([1], [0.0]) == pytest.approx(-math.log(1e-7))


def test_gauc_is_impression_weighted_and_skips_one_class_groups() -> None:
    y = np.array([1, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.9, 0.2, 0.6, 0.5, 0.1, 0.3, 0.7, 0.2])
    g = np.array([0, 0, 0, 1, 1, 1, 2, 2])  # group 2 is all clicks: skipped
    a0 = roc_auc_score(y[:3], p[:3])
    a1 = roc_auc_score(y[3:6], p[3:6])
    assert metrics.gauc(y, p, g) == pytest.approx((3 * a0 + 3 * a1) / 6)


def test_gauc_weightings_hand_computed() -> None:
    # group 0: positives {0.9, 0.4}, negatives {0.2, 0.6}: pairs won 1 + 1 + 1 + 0 -> AUC 3/4;
    # group 1: positive 0.1 below negative 0.3 -> AUC 0; group 2: clicks only, skipped.
    y = [1, 0, 0, 1, 0, 1, 1, 1]
    p = [0.9, 0.2, 0.6, 0.4, 0.3, 0.1, 0.5, 0.7]
    g = [0, 0, 0, 0, 1, 1, 2, 2]
    impressions = (4 * 0.75 + 2 * 0.0) / 6  # DIN eq. 9, FuxiCTR's gAUC: 0.5
    users = (0.75 + 0.0) / 2  # the mean over users, as the CETNet paper describes: 0.375
    assert metrics.gauc(y, p, g, weighting="impressions") == pytest.approx(impressions)
    assert metrics.gauc(y, p, g, weighting="users") == pytest.approx(users)
    assert metrics.gaucs(y, p, g) == pytest.approx(
        {"gauc_impressions": impressions, "gauc_users": users})
    with pytest.raises(ValueError, match="weighting"):
        metrics.gauc(y, p, g, weighting="clicks")


def test_gauc_matches_loop_over_groups() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    y = rng.integers(0, 2, n)
    p = np.round(rng.random(n), 2)
    g = rng.integers(0, 40, n)
    num = den = 0.0
    for k in np.unique(g):
        m = g == k
        if y[m].min() != y[m].max():
            num += m.sum() * roc_auc_score(y[m], p[m])
            den += m.sum()
    assert metrics.gauc(y, p, g) == pytest.approx(num / den, abs=1e-12)
    assert metrics.gaucs(y, p, g)["gauc_impressions"] == pytest.approx(num / den, abs=1e-12)


def test_single_class_gives_nan_with_warning() -> None:
    with pytest.warns(metrics.UndefinedMetricWarning, match="undefined"):
        assert math.isnan(metrics.auc([1, 1, 1], [0.1, 0.5, 0.9]))
    with pytest.warns(metrics.UndefinedMetricWarning):
        assert math.isnan(metrics.normalized_entropy([0, 1], [0.1, 0.2], background_rate=0.0))
    with pytest.warns(metrics.UndefinedMetricWarning, match="gAUC"):
        assert math.isnan(metrics.gaucs([1, 0], [0.3, 0.4], [0, 1])["gauc_users"])


def test_empty_input_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="empty"):
        metrics.auc([], [])


def test_normalized_entropy_uses_the_training_background_rate() -> None:
    # He et al. 2014: NE = logloss / H(background CTR of the training set).
    # Evaluated rows: 1 click in 4 (rate 0.25); training background rate 0.5, H(0.5) = ln 2.
    # logloss = -(ln 0.6 + ln 0.8 + ln 0.9 + ln 0.7) / 4
    #         = (0.5108256 + 0.2231436 + 0.1053605 + 0.3566749) / 4 = 0.2990012
    y = np.array([1, 0, 0, 0])
    p = np.array([0.6, 0.2, 0.1, 0.3])
    assert metrics.normalized_entropy(y, p, background_rate=0.5) == pytest.approx(
        0.2990012 / 0.6931472, abs=1e-7)  # 0.4313675, not 0.2990012 / H(0.25) = 0.5319
    # predicting the background rate everywhere scores exactly 1 when it is the evaluated rate
    assert metrics.normalized_entropy(y, np.full(4, 0.25), background_rate=0.25) == (
        pytest.approx(1.0))
    with pytest.raises(ValueError, match="background_rate"):
        metrics.normalized_entropy(y, p, background_rate=1.5)


def test_relaimp() -> None:
    assert metrics.relaimp(0.81, 0.80) == pytest.approx(0.31 / 0.30 - 1)


def _pairwise_auc(labels: list[float], scores: list[float]) -> float:
    """AUC by counting every (click, non-click) pair, ties as half: the definition."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_a_run_on_a_store_with_a_user_field_reports_both_gaucs_for_valid_and_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_store(tmp_path / "data", {"train": 300, "valid": 60, "test": 60},
                       SEQUENCE_FEATURE_MAP, sequence_split)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "dnn", "--out", str(run),
                 *TINY_TRAINING]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    assert printed == saved
    store = EncodedStore.open(data)
    users = np.asarray(store.split("test").categorical[:, 0])  # the field named user
    with np.load(run / "test_predictions.npz") as file:
        labels, scores = file["label"], file["pred_dnn"]
    test = saved["test"]["dnn"]
    assert {k: test[k] for k in metrics.GAUC_KEYS} == metrics.gaucs(labels, scores, users)
    # by hand: each user's AUC over its pairs, averaged by rows and by users
    aucs, rows = [], []
    for user in np.unique(users):
        mine = users == user
        if 0 < labels[mine].sum() < mine.sum():
            aucs.append(_pairwise_auc(list(labels[mine]), list(scores[mine])))
            rows.append(int(mine.sum()))
    assert test["gauc_users"] == pytest.approx(float(np.mean(aucs)), abs=1e-12)
    assert test["gauc_impressions"] == pytest.approx(
        float(np.dot(aucs, rows) / np.sum(rows)), abs=1e-12)
    assert set(saved["valid"]["dnn"]) == {"auc", "logloss", *metrics.GAUC_KEYS}
    # evaluate reports the same numbers, grouped by the same field, without being told it
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for split in ("valid", "test"):
        assert {k: evaluated[split]["dnn"][k] for k in saved[split]["dnn"]} == \
            pytest.approx(saved[split]["dnn"], abs=1e-9)
    assert main(["evaluate", str(run), "--gauc-by", ""]) == 0
    assert "gauc_users" not in capsys.readouterr().out
    # a run folder made before train.user_field existed holds the same run: it is reused
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["train"]["user_field"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--data", str(data), "--model", "dnn", "--out", str(run),
                 *TINY_TRAINING]) == 0
    assert "already finished with this config" in capsys.readouterr().err


def test_gauc_groups_by_the_declared_user_field_another_field_or_none(tmp_path: Path) -> None:
    with_user = EncodedStore.open(write_store(
        tmp_path / "seq", {"train": 10, "valid": 5, "test": 5}, SEQUENCE_FEATURE_MAP,
        sequence_split))
    without = EncodedStore.open(write_store(tmp_path / "plain", {"train": 10, "valid": 5,
                                                                 "test": 5}))
    assert users.user_field(with_user) == "user"
    assert users.user_field(without) is None  # fields a, b, c: no declared user field
    assert users.user_column(without, "b") == 1
    assert users.user_field(with_user, "") is None
    with_user.meta["settings"] = {"split": {"user_column": "hour"}}
    assert users.declared_user_field(with_user) == "hour"
    with_user.meta["settings"] = {"tabular": {"history": {"user": "item"}},
                                  "split": {"user_column": "hour"}}
    assert users.declared_user_field(with_user) == "item"
    with pytest.raises(ConfigError, match=r"train.user_field 'x': not a categorical field of "
                                          r"the store \(its categorical fields: a, b, c\)"):
        users.user_field(without, "x")
