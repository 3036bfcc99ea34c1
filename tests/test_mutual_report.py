"""Report helpers: statistics against scipy, tables, CSV and plots."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from scipy import stats

from mutualctr.experiments.report import (
    format_mean_std,
    markdown_table,
    mean_std,
    paired_effect,
    paired_t_test,
    plot_grouped_bars,
    plot_lines,
    regularized_incomplete_beta,
    write_csv,
)


def test_mean_std_uses_sample_deviation() -> None:
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([0.7]) == (0.7, 0.0)
    assert format_mean_std([0.8, 0.81]) == "0.8050 ± 0.0071"


@pytest.mark.parametrize(
    ("after", "before"),
    [
        ([0.801, 0.803, 0.8025, 0.8041], [0.800, 0.8011, 0.8012, 0.8030]),
        ([0.7, 0.71], [0.705, 0.7]),
        ([0.5, 0.52, 0.49, 0.51, 0.6, 0.55], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ],
)
def test_paired_t_test_matches_scipy(after: list[float], before: list[float]) -> None:
    ours = paired_t_test(after, before)
    ref = stats.ttest_rel(after, before)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert ours.dof == len(after) - 1


def test_paired_t_test_degenerate_cases() -> None:
    assert paired_t_test([1.0, 2.0], [0.0, 1.0]).p_value == 0.0
    assert math.isnan(paired_t_test([1.0, 2.0], [1.0, 2.0]).p_value)
    with pytest.raises(ValueError, match="two pairs"):
        paired_t_test([1.0], [0.0])


def test_paired_effect_is_the_mean_difference_its_std_and_the_paired_p() -> None:
    after, before = [0.801, 0.803, 0.8025], [0.800, 0.8011, 0.8012]
    diffs = [0.001, 0.0019, 0.0013]
    effect = paired_effect(after, before)
    assert (effect.mean, effect.std) == pytest.approx(
        (sum(diffs) / 3, stats.tstd(diffs)), rel=1e-6)
    assert effect.n == 3
    assert effect.p_value == pytest.approx(stats.ttest_rel(after, before).pvalue, rel=1e-7)
    assert math.isnan(paired_effect([0.8], [0.7]).p_value)


@pytest.mark.parametrize(("a", "b", "x"), [(0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (7.5, 0.5, 0.05)])
def test_incomplete_beta_matches_scipy(a: float, b: float, x: float) -> None:
    from scipy.special import betainc

    assert regularized_incomplete_beta(a, b, x) == pytest.approx(betainc(a, b, x), rel=1e-10)


def test_markdown_table_layout() -> None:
    text = markdown_table(["model", "AUC"], [["deepfm", "0.8000"]])
    assert text.splitlines() == ["| model | AUC |", "|:--|--:|", "| deepfm | 0.8000 |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["x"]])


def test_csv_and_plots_are_written(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    with (tmp_path / "r.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "", "c": "4"}]
    plot_lines(tmp_path / "n.png", [2, 3], {"deepfm": [(0.8, 0.01), (0.81, 0.0)]},
               xlabel="N", ylabel="AUC", title="t")
    plot_grouped_bars(tmp_path / "b.png", ["deepfm"], {"alone": [(0.8, 0.01)]},
                      ylabel="AUC", title="t")
    for name in ("n.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
