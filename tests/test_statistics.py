"""mutualctr.statistics against scipy: mean ± std, the paired t-test (statistic, p-value,
degrees of freedom, degenerate cases), the incomplete beta and Student's t behind it."""

from __future__ import annotations

import math

import pytest
from scipy import special, stats

from mutualctr.statistics import (
    format_mean_std,
    mean_std,
    paired_effect,
    paired_t_test,
    paired_t_test_by_unit,
    regularized_incomplete_beta,
    student_t_two_sided_p,
)


def test_mean_std_uses_sample_deviation() -> None:
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_std([0.7]) == (0.7, 0.0)
    assert mean_std([0.8, 0.81, 0.79])[1] == pytest.approx(stats.tstd([0.8, 0.81, 0.79]))
    assert format_mean_std([0.8, 0.81]) == "0.8050 ± 0.0071"
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


PAIRS = [
    # n = 2: one degree of freedom
    ([0.7, 0.71], [0.705, 0.7]),
    ([0.5, 0.7], [0.4, 0.75]),
    # n = 3 and 4: AUC-like values close together
    ([0.801, 0.803, 0.8025], [0.800, 0.8011, 0.8012]),
    ([0.801, 0.803, 0.8025, 0.8041], [0.800, 0.8011, 0.8012, 0.8030]),
    # a larger, negative effect and a large sample
    ([0.49, 0.47, 0.5, 0.46, 0.48], [0.5, 0.5, 0.5, 0.5, 0.5]),
    ([0.5, 0.52, 0.49, 0.51, 0.6, 0.55, 0.53, 0.5, 0.58, 0.51, 0.54, 0.57],
     [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.51, 0.49, 0.52, 0.5, 0.5, 0.55]),
]


@pytest.mark.parametrize(("after", "before"), PAIRS)
def test_paired_t_test_matches_scipy(after: list[float], before: list[float]) -> None:
    ours = paired_t_test(after, before)
    ref = stats.ttest_rel(after, before)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-10)
    assert ours.dof == ref.df == len(after) - 1


def test_paired_t_test_with_two_pairs_is_the_cauchy_tail() -> None:
    """One degree of freedom: Student's t is the Cauchy distribution, so the two-sided p-value
    is 1 - 2 atan(|t|) / pi; differences 1 and 3 give t = 2 / (sqrt 2 / sqrt 2) = 2."""
    result = paired_t_test([1.0, 3.0], [0.0, 0.0])
    assert (result.statistic, result.dof) == (2.0, 1)
    assert result.p_value == pytest.approx(1 - 2 * math.atan(2.0) / math.pi, abs=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy warns of the cancellation
def test_zero_variance_differences_behave_as_in_scipy() -> None:
    # every difference +1 (exactly representable): t = +inf, p = 0
    ours = paired_t_test([1.0, 2.0, 4.0], [0.0, 1.0, 3.0])
    ref = stats.ttest_rel([1.0, 2.0, 4.0], [0.0, 1.0, 3.0])
    assert (ours.statistic, ours.p_value) == (ref.statistic, ref.pvalue) == (math.inf, 0.0)
    below = paired_t_test([0.0, 1.0], [1.0, 2.0])
    assert (below.statistic, below.p_value) == (-math.inf, 0.0)
    # every difference 0: undefined, as scipy's nan
    same = paired_t_test([1.0, 2.0], [1.0, 2.0])
    ref = stats.ttest_rel([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(same.statistic) and math.isnan(same.p_value)
    assert math.isnan(ref.statistic) and math.isnan(ref.pvalue)


def test_paired_t_test_refuses_unpaired_or_single_samples() -> None:
    with pytest.raises(ValueError, match="two pairs"):
        paired_t_test([1.0], [0.0])
    with pytest.raises(ValueError, match="differ in length"):
        paired_t_test([1.0, 2.0], [0.0])


def test_paired_t_test_by_unit_pairs_the_common_units() -> None:
    after = {2024: 0.81, 2025: 0.83, 2026: 0.80, 9: 0.1}
    before = {2026: 0.795, 2025: 0.82, 2024: 0.80}
    ours = paired_t_test_by_unit(after, before)
    ref = stats.ttest_rel([0.81, 0.83, 0.80], [0.80, 0.82, 0.795])
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-10) and ours.dof == 2


def test_paired_effect_is_the_mean_difference_its_std_and_the_paired_p() -> None:
    after, before = [0.801, 0.803, 0.8025], [0.800, 0.8011, 0.8012]
    diffs = [0.001, 0.0019, 0.0013]
    effect = paired_effect(after, before)
    assert (effect.mean, effect.std) == pytest.approx(
        (sum(diffs) / 3, stats.tstd(diffs)), rel=1e-6)
    assert effect.n == 3
    assert effect.p_value == pytest.approx(stats.ttest_rel(after, before).pvalue, abs=1e-10)
    single = paired_effect([0.8], [0.7])
    assert single.n == 1 and math.isnan(single.p_value)


@pytest.mark.parametrize(("a", "b", "x"), [(0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (7.5, 0.5, 0.05),
                                           (0.5, 0.5, 0.999), (30.0, 0.5, 0.5), (1.0, 1.0, 0.2)])
def test_incomplete_beta_matches_scipy(a: float, b: float, x: float) -> None:
    assert regularized_incomplete_beta(a, b, x) == pytest.approx(special.betainc(a, b, x),
                                                                 rel=1e-10)
    assert regularized_incomplete_beta(a, b, 0.0) == 0.0
    assert regularized_incomplete_beta(a, b, 1.0) == 1.0
    with pytest.raises(ValueError, match="0, 1"):
        regularized_incomplete_beta(a, b, 1.5)


@pytest.mark.parametrize(("t", "dof"), [(0.0, 1), (0.3, 1), (-2.5, 2), (4.0, 3), (1.96, 60),
                                        (12.0, 5)])
def test_two_sided_t_p_matches_scipy(t: float, dof: int) -> None:
    assert student_t_two_sided_p(t, dof) == pytest.approx(2 * stats.t.sf(abs(t), dof),
                                                          abs=1e-12)
