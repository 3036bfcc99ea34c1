"""Early stopping and best-epoch selection, for one monitored prediction or for each member.

With a single monitored prediction (``Objective.monitor`` is a prediction name) the whole group
and the objective are snapshotted at the best epoch. With ``PER_MEMBER`` every member is
selected on its own prediction: its own best epoch, its own patience counter, its own snapshot;
training stops when every member has run out of patience, and each member is restored to its own
best epoch (the mutual-learning paper's per-model selection). Members sharing parameters (one
embedding) must not be selected per member: restoring one member would overwrite the other's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mutualctr.training.objectives.base import Objective


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class Selector:
    """Tracks the best validation value per monitored name and keeps the matching weights.

    Args:
        group, objective: what is snapshotted and restored.
        metric: ``auc`` (higher is better) or ``logloss`` (lower is better).
        patience: epochs without improvement before a monitored name is exhausted.
    """

    def __init__(
        self, group: nn.Module, objective: Objective, metric: str, patience: int
    ) -> None:
        self.group, self.objective = group, objective
        self.metric, self.patience = metric, patience
        self.names = list(group.names) if objective.per_member else [objective.monitor]
        self.best: dict[str, dict[str, Any]] = {
            name: {"value": None, "epoch": 0, "bad_epochs": 0} for name in self.names
        }
        self.weights: dict[str, dict[str, Any]] = {}

    def _better(self, value: float, best: float | None) -> bool:
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value > best if self.metric == "auc" else value < best

    def monitored_value(self, metrics: dict[str, dict[str, float]]) -> float:
        """The value a plateau schedule watches: the monitored metric (mean over members)."""
        return sum(self._value(metrics, name) for name in self.names) / len(self.names)

    def _value(self, metrics: dict[str, dict[str, float]], name: str) -> float:
        if name not in metrics:
            raise KeyError(
                f"the objective monitors {name!r} but predicts only {sorted(metrics)}"
            )
        return metrics[name][self.metric]

    def update(self, metrics: dict[str, dict[str, float]], epoch: int) -> None:
        """Record epoch ``epoch`` (1-based) and snapshot the weights of every improved name."""
        for name in self.names:
            value, state = self._value(metrics, name), self.best[name]
            if self._better(value, state["value"]):
                state.update(value=value, epoch=epoch, bad_epochs=0)
                self.weights[name] = self._take(name)
            else:
                state["bad_epochs"] += 1

    def _take(self, name: str) -> dict[str, Any]:
        if self.objective.per_member:
            state = self.group.member_state_dict(self.group.names.index(name))
            return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
        return {"group": _snapshot(self.group), "objective": _snapshot(self.objective)}

    @property
    def should_stop(self) -> bool:
        """Every monitored name went ``patience`` epochs in a row without improving."""
        return all(s["bad_epochs"] >= self.patience for s in self.best.values())

    def restore(self) -> list[str]:
        """Load every kept snapshot; returns the names that had none (never improved)."""
        for name, weights in self.weights.items():
            if self.objective.per_member:
                self.group.load_member_state_dict(self.group.names.index(name), weights)
            else:
                self.group.load_state_dict(weights["group"])
                self.objective.load_state_dict(weights["objective"])
        return [name for name in self.names if name not in self.weights]

    def best_epochs(self) -> dict[str, int]:
        return {name: int(state["epoch"]) for name, state in self.best.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.weights = state["weights"]
