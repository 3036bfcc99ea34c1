"""The contract between a group of models and the trainer.

An objective turns the outputs of a group of N models into one loss to minimise and named click
probabilities to evaluate (each member, an ensemble, a fused prediction ...). Independent
training, mutual learning, EKTF, CETNet and the KD baselines are objectives; the trainer does not
know which one it runs. Objectives are ``nn.Module`` s, so they may own parameters (CETNet's
readout, a gate): the trainer optimises and checkpoints them with the models.

Model selection. ``monitor`` names the prediction whose validation metric drives early stopping
and the choice of the best epoch. The special value :data:`PER_MEMBER` selects every member on
its own prediction (named like the member): the trainer keeps each member's best weights
separately and restores each at the end (mutual learning picks the best epoch per model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.models.base import ModelOutput

PER_MEMBER = "per_member"
ENSEMBLE = "ensemble"  # the mean of the members' probabilities, where an objective reports it


@dataclass
class ObjectiveOutput:
    """What one training step of an objective produces.

    Attributes:
        loss: scalar to minimise (summed over members where each member has its own loss).
        predictions: click probabilities ``[B]`` by name.
        parts: named loss terms for logging (floats or 0-d tensors).
    """

    loss: torch.Tensor
    predictions: dict[str, torch.Tensor]
    parts: dict[str, float | torch.Tensor] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class. Subclasses implement :meth:`forward` (training) and :meth:`predict` (eval).

    Args:
        member_names: the group's model names, in the group's order.
        monitor: the prediction early stopping watches, or :data:`PER_MEMBER`.
    """

    def __init__(self, member_names: Sequence[str] = (), monitor: str = PER_MEMBER) -> None:
        super().__init__()
        self.member_names = list(member_names)
        self.monitor = monitor

    @property
    def per_member(self) -> bool:
        """Whether each member is selected (best epoch, early stopping) on its own prediction."""
        return self.monitor == PER_MEMBER

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        """The loss and predictions of one training batch (labels in ``batch.label``)."""
        raise NotImplementedError

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        """Click probabilities by name, without labels (evaluation and serving)."""
        raise NotImplementedError
