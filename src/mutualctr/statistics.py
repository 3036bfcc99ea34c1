"""Statistics over independent runs: mean ± standard deviation and the paired t-test.

The unit of every test here is one independent sample: a training run with its own seed, or a
group of models trained together (one sample, not one per member: co-trained members learn
from each other). Two configurations are compared by pairing their samples by that unit (the
same seed, the same group of pretrained runs), so the test is Student's paired t-test on the
per-unit differences, two-sided, with ``n - 1`` degrees of freedom for ``n`` pairs.

Implemented with :mod:`math` alone (Student's t distribution through the regularised incomplete
beta function, evaluated by Lentz's continued fraction as in Numerical Recipes, 2nd ed.,
section 6.4), so scipy stays a development dependency; tests/test_statistics.py checks every
function here against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``; 0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± std`` of :func:`mean_std` with ``digits`` decimals: ``0.8050 ± 0.0071``."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class TTestResult:
    """A t-test's statistic, two-sided p-value and degrees of freedom."""

    statistic: float
    p_value: float
    dof: int


def paired_t_test(after: Sequence[float], before: Sequence[float]) -> TTestResult:
    """Student's paired t-test of ``after`` against ``before`` (pair ``i`` is ``after[i]`` and
    ``before[i]``), two-sided; the same test as ``scipy.stats.ttest_rel``.

    With the differences ``d = after - before`` over ``n`` pairs, ``t = mean(d) / (std(d) /
    sqrt(n))`` (sample std), ``n - 1`` degrees of freedom, and ``p = P(|T| >= |t|)``. A
    positive statistic means ``after`` is larger on average.

    Identical differences have no spread: the statistic is then ``±inf`` with ``p = 0``, or
    undefined (``nan``, ``p = nan``) when every difference is 0, as in scipy.

    Raises:
        ValueError: the samples differ in length, or there are fewer than two pairs.
    """
    if len(after) != len(before):
        raise ValueError(f"paired samples differ in length: {len(after)} vs {len(before)}")
    if len(after) < 2:
        raise ValueError("a paired t-test needs at least two pairs")
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    mean, std = mean_std(diffs)
    dof = len(diffs) - 1
    if std == 0.0:
        if mean == 0.0:
            return TTestResult(math.nan, math.nan, dof)
        return TTestResult(math.copysign(math.inf, mean), 0.0, dof)
    t = mean / (std / math.sqrt(len(diffs)))
    return TTestResult(t, student_t_two_sided_p(t, dof), dof)


def paired_t_test_by_unit(
    after: Mapping[Any, float], before: Mapping[Any, float]
) -> TTestResult:
    """:func:`paired_t_test` over the units (e.g. seeds) present in both mappings, paired by
    unit.

    A unit is one independent sample: runs that share a training run (the members of one
    co-trained group) are one unit, so key them by what makes them independent, not by member.
    """
    units = sorted(set(after) & set(before))
    return paired_t_test([after[u] for u in units], [before[u] for u in units])


@dataclass(frozen=True)
class PairedEffect:
    """``after - before`` over pairs: the mean difference (the effect), the differences' sample
    std, the number of pairs and the two-sided paired t-test's p-value (nan below two
    pairs)."""

    mean: float
    std: float
    n: int
    p_value: float


def paired_effect(after: Sequence[float], before: Sequence[float]) -> PairedEffect:
    """Effect size, spread and :func:`paired_t_test` of ``after`` against ``before``."""
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    mean, std = mean_std(diffs)
    p = paired_t_test(after, before).p_value if len(diffs) >= 2 else math.nan
    return PairedEffect(mean, std, len(diffs), p)


def student_t_two_sided_p(t: float, dof: int) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``dof`` degrees of freedom (the two-sided
    p-value of statistic ``t``): ``I_{dof / (dof + t^2)}(dof / 2, 1 / 2)``."""
    return regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` (``scipy.special.betainc``), by
    its continued fraction, using the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)`` where that
    converges faster (Numerical Recipes, 2nd ed., section 6.4).

    Raises:
        ValueError: ``x`` is outside ``[0, 1]``.
    """
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result
