"""Shared helpers for experiment reports: summary statistics, a paired t-test, markdown
tables, CSV files and plots.

Every experiment (Yilmaz's mutual learning, EKTF, CETNet) turns run folders into the same
kind of report, so the pieces live here. The paired t-test is implemented with ``math`` (the
regularised incomplete beta function by Lentz's continued fraction, Numerical Recipes 6.4) so
scipy stays a development-only dependency; tests compare it with ``scipy.stats.ttest_rel``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_percent(value: float, digits: int = 2) -> str:
    """A fraction as a signed percentage: 0.0031 -> ``+0.31%``."""
    return f"{100.0 * value:+.{digits}f}%"


@dataclass(frozen=True)
class TTestResult:
    statistic: float
    p_value: float
    dof: int


def paired_t_test(after: Sequence[float], before: Sequence[float]) -> TTestResult:
    """Two-sided paired Student t-test of ``after - before`` (same as scipy.stats.ttest_rel).

    With identical differences the statistic is +-inf (p = 0) or undefined (nan, p = nan when
    all differences are 0), as in scipy.
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


def student_t_two_sided_p(t: float, dof: int) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` degrees of freedom: I_{v/(v+t^2)}(v/2, 1/2)."""
    return regularized_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by the continued fraction, using the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
    where it converges faster (Numerical Recipes, 2nd ed., section 6.4)."""
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


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None
) -> str:
    """A GitHub markdown table. ``align`` has one letter per column: l, r or c (default: the
    first column left, the others right)."""
    header = [str(h) for h in header]
    body = [[str(cell) for cell in row] for row in rows]
    for row in body:
        if len(row) != len(header):
            raise ValueError(f"row {row} has {len(row)} cells, the header {len(header)}")
    align = align or "l" + "r" * (len(header) - 1)
    rules = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(rules[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write dictionaries as CSV; the columns are the union of keys in first-seen order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def plot_lines(
    path: Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """One line per series with (mean, std) error bars at each x; saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in series.items():
        means = [m for m, _ in points]
        stds = [s for _, s in points]
        ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xticks(list(x))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_grouped_bars(
    path: Path,
    categories: Sequence[str],
    groups: Mapping[str, Sequence[tuple[float, float]]],
    *,
    ylabel: str,
    title: str,
) -> None:
    """Bars of (mean, std) per category, one bar per group side by side; saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(categories)), 4))
    width = 0.8 / max(len(groups), 1)
    all_low, all_high = [], []
    for g, (name, points) in enumerate(groups.items()):
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(categories))]
        means = [m for m, _ in points]
        stds = [s for _, s in points]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=name)
        all_low += [m - s for m, s in points]
        all_high += [m + s for m, s in points]
    if all_low:
        span = max(max(all_high) - min(all_low), 1e-4)
        ax.set_ylim(min(all_low) - 0.3 * span, max(all_high) + 0.3 * span)
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


@dataclass(frozen=True)
class PairedEffect:
    """``after - before`` over pairs: mean difference (the effect), its sample std, the number
    of pairs and the two-sided paired t-test's p-value (nan below two pairs)."""

    mean: float
    std: float
    n: int
    p_value: float


def paired_effect(after: Sequence[float], before: Sequence[float]) -> PairedEffect:
    """Effect size, spread and paired t-test of ``after`` against ``before``."""
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    mean, std = mean_std(diffs)
    p = paired_t_test(after, before).p_value if len(diffs) >= 2 else math.nan
    return PairedEffect(mean, std, len(diffs), p)


def paired_t_test_by_unit(
    after: Mapping[Any, float], before: Mapping[Any, float]
) -> TTestResult:
    """:func:`paired_t_test` over the units (e.g. seeds) present in both mappings.

    A unit is one independent sample: runs that share a training run (the members of one
    co-trained group) are one unit, so key them by what makes them independent, not by member.
    """
    units = sorted(set(after) & set(before))
    return paired_t_test([after[u] for u in units], [before[u] for u in units])
