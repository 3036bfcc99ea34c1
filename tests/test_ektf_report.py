"""The EKTF report's statistics against hand-computed values: the paired t-test by seed with
Li et al.'s star (Table 2), their Abs.Imp, and the transcription of their figures."""

from __future__ import annotations

import math

import pytest

from mutualctr.experiments.ektf import paper
from mutualctr.experiments.ektf import plan as ektf_plan
from mutualctr.experiments.ektf import report as ektf_report


def run(auc: float, logloss: float) -> dict:
    """One single-model or group run's metrics (test split only is read)."""
    values = {"auc": auc, "logloss": logloss}
    return {"valid": {"teacher": values, "s0": values}, "test": {"teacher": values,
                                                                 "s0": values}}


def t_two_sided_p_dof2(t: float) -> float:
    """Student's t with 2 degrees of freedom has CDF 1/2 + t / (2 sqrt(2 + t^2)), so the
    two-sided p-value is 1 - |t| / sqrt(2 + t^2)."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def table2_by_model(ektf_aucs: list[float]) -> dict[str, dict]:
    """Three seeds: MLP, PNN (the best baseline) and EKTF's teacher with ``ektf_aucs``; EKTF's
    logloss is worse than PNN's in every seed."""
    base = [0.800, 0.790, 0.805]
    results = {
        "single_mlp": [run(a - 0.02, 0.50) for a in base],
        "single_pnn": [run(a, 0.45) for a in base],
        "ektf_mlp_k3": [run(a, 0.46 + i / 1000) for i, a in enumerate(ektf_aucs)],
        "ektf_latest": [run(a, 0.46) for a in ektf_aucs],
    }
    rows = ektf_report.table2(results, ektf_plan.SIZES["tiny"], latest=("pnn",))
    return {r["model"]: r for r in rows}


def test_star_needs_p_below_1e3_in_a_paired_two_tailed_test() -> None:
    # differences to PNN by seed: 0.0100, 0.0104, 0.0108 -> mean 0.0104, sd 0.0004,
    # t = 0.0104 / (0.0004 / sqrt 3) = 26 sqrt 3, p = 1 - sqrt(2028 / 2030) = 4.9e-4 < 1e-3
    rows = table2_by_model([0.810, 0.8004, 0.8158])
    teacher = rows["EKTF_MLP (K=3, teacher)"]
    assert teacher["p_auc"] == f"{t_two_sided_p_dof2(26 * math.sqrt(3)):.1e}" == "4.9e-04"
    assert teacher["test_auc"].endswith(paper.STAR)
    # logloss: 0.46, 0.461, 0.462 against 0.45: significant but worse, so no star
    assert not teacher["test_logloss"].endswith(paper.STAR)
    assert rows["PNN"]["p_auc"] == "" and not rows["PNN"]["test_auc"].endswith(paper.STAR)


def test_no_star_when_p_is_above_1e3() -> None:
    # differences 0.010, 0.012, 0.011 -> t = 0.011 / (0.001 / sqrt 3) = 11 sqrt 3,
    # p = 1 - sqrt(363 / 365) = 2.7e-3
    rows = table2_by_model([0.810, 0.802, 0.816])
    teacher = rows["EKTF_MLP (K=3, teacher)"]
    assert teacher["p_auc"] == f"{t_two_sided_p_dof2(11 * math.sqrt(3)):.1e}" == "2.7e-03"
    assert not teacher["test_auc"].endswith(paper.STAR)
    # best baseline by logloss is PNN too (0.45 < 0.50); the note names it
    note = ektf_report.table2_note({"single_mlp": [run(0.78, 0.5)] * 3,
                                   "single_pnn": [run(0.8, 0.45)] * 3}, latest=("pnn",))
    assert "by AUC: PNN, by logloss: PNN" in note and "not independent" in note


def test_abs_imp_reproduces_the_papers_row() -> None:
    """Table 2's Abs.Imp row is EKTF_MLP_bs minus MLP, AUC in points: Criteo
    81.50 - 81.40 = +0.10 and 0.4370 - 0.4380 = -0.001; KKBox 85.39 - 85.01 = +0.38 and
    0.4822 - 0.4811 = +0.0011."""
    printed = paper.TABLE2_ABS_IMP.split()
    for i, dataset in enumerate(paper.DATASETS):
        bs, mlp = paper.TABLE2["EKTF_MLP_bs"][dataset], paper.TABLE2["MLP"][dataset]
        auc_points, logloss = paper.abs_imp(bs.auc, bs.logloss, mlp.auc, mlp.logloss)
        assert auc_points == pytest.approx(float(printed[2 * i + 1]), abs=1e-9)
        assert logloss == pytest.approx(float(printed[2 * i]), abs=1e-9)
    assert paper.format_abs_imp(0.1, -0.001) == ("+0.10", "-0.0010")


def test_transcribed_figures_spot_checks() -> None:
    """A few cells read off the paper by hand (Tables 2 and 4)."""
    assert len(paper.TABLE2) == 19 and len(paper.BASELINES) == 16
    ektf_latest = paper.TABLE2["EKTF_Latest"]
    assert (ektf_latest["Criteo"].logloss, ektf_latest["Criteo"].auc_percent) == (0.4356, 81.63)
    assert ektf_latest["iPinYou"].logloss == 0.005530 and ektf_latest["KKBox"].auc_star
    ektf_mlp = paper.TABLE2["EKTF_MLP"]
    assert ektf_mlp["Criteo"].auc_star and not ektf_mlp["ML-1M"].auc_star
    assert paper.TABLE2["FINAL(2B)"]["ML-1M"].logloss == 0.3035
    assert paper.TABLE2["CL4CTR"]["KKBox"].auc_percent == 83.78
    assert paper.TABLE4_LATEST["EKTF_FINAL(1B)"]["KKBox"].auc_percent == 85.55
    rows = paper.paper_rows(["MLP"])
    assert rows[0]["model (Li et al.)"] == "MLP" and rows[0]["iPinYou logloss"] == "0.005545"
    assert rows[-1]["model (Li et al.)"] == "EKTF_ECN" and rows[-1]["KDD12 AUC"] == ""
