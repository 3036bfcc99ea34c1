"""Shared pieces of the experiments' reports: markdown tables, CSV files and plots.

Every experiment (Yilmaz's mutual learning, EKTF, CETNet) turns its records into the same kind
of report, so the pieces live here; the statistics (mean ± std, paired t-tests) are
:mod:`mutualctr.statistics`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def format_percent(value: float, digits: int = 2) -> str:
    """A fraction as a signed percentage: 0.0031 -> ``+0.31%``."""
    return f"{100.0 * value:+.{digits}f}%"


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
