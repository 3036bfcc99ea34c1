"""``OUT/trials.png``: the metric of every trial and the best so far."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mutualctr import files
from mutualctr.experiments.report import pyplot


def plot_trials(trials: Sequence[Any], label: str, maximize: bool, path: Path) -> None:
    """Finished trials (Optuna ``FrozenTrial``s) by number: complete ones as dots with the
    best-so-far line, pruned ones as crosses at their last reported epoch's value."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    complete = [(t.number, t.value) for t in trials if t.value is not None]
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)])
              for t in trials if t.value is None and t.intermediate_values]
    if complete:
        numbers, values = zip(*complete, strict=True)
        ax.plot(numbers, values, "o", label="trial")
        pick = max if maximize else min
        best = [pick(values[: i + 1]) for i in range(len(values))]
        ax.step(numbers, best, where="post", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned, strict=True), "x", color="grey", label="pruned (last epoch)")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
