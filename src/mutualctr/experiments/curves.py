"""Learning curves: validation AUC per epoch, read from run folders' ``metrics.jsonl``.

The papers measure deep CTR models at their best validation epoch, which on Criteo and Avazu is
the first or second (the "one-epoch" overfitting of deep CTR models, Zhang et al., CIKM 2022).
These curves show whether a data set has that shape, and which epoch each run kept.

    mutualctr experiment curves RUN [RUN ...] --out curves.png
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutualctr.experiments.report import markdown_table, pyplot, save_figure
from mutualctr.runfolders.folder import HISTORY_FILE


@dataclass(frozen=True)
class Curve:
    """Validation AUC after each finished epoch of one prediction of one run."""

    label: str
    aucs: tuple[float, ...]

    @property
    def best_epoch(self) -> int:
        return max(range(len(self.aucs)), key=self.aucs.__getitem__) + 1


def learning_curves(run: Path, label: str | None = None) -> list[Curve]:
    """One curve per prediction in ``run``'s history (``label`` names a single-prediction run;
    several predictions are labelled ``label/name``)."""
    path = Path(run) / HISTORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training history (is {run} a run folder?)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    names = list(records[0]["valid"]) if records else []
    base = label or Path(run).name
    return [
        Curve(base if len(names) == 1 else f"{base}/{name}",
              tuple(r["valid"][name]["auc"] for r in records))
        for name in names
    ]


def curves_table(curves: Sequence[Curve]) -> str:
    """Markdown: one row per curve, its AUC after each epoch and its best epoch."""
    epochs = max(len(c.aucs) for c in curves)
    rows = [[c.label, *(f"{a:.4f}" for a in c.aucs), *[""] * (epochs - len(c.aucs)),
             str(c.best_epoch)] for c in curves]
    return markdown_table(["run", *(f"epoch {e}" for e in range(1, epochs + 1)), "best"], rows)


def plot_curves(path: Path, curves: Sequence[Curve], title: str) -> None:
    """Validation AUC against epoch, one line per curve; saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in curves:
        ax.plot(range(1, len(c.aucs) + 1), c.aucs, marker="o", label=c.label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation AUC")
    ax.set_title(title)
    ax.set_xticks(range(1, max(len(c.aucs) for c in curves) + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
