"""Each member trained on its own BCE; a group of one is plain single-model training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mutualctr.data.batch import Batch
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.auxiliary import members_auxiliary_loss
from mutualctr.training.objectives.base import ENSEMBLE, PER_MEMBER, Objective, ObjectiveOutput


class IndependentObjective(Objective):
    """``sum_n BCE(y, p_n)``: members do not interact, each gets exactly its own gradient.

    A member whose paper adds a loss (FINAL, DCNv3) gets it too (:mod:`.auxiliary`).

    Predictions: one per member, plus ``ensemble`` (mean of the members' probabilities) when there
    are two or more. A single member is monitored by its own prediction; several are selected
    per member.
    """

    def __init__(self, member_names: Sequence[str]) -> None:
        if not member_names:
            raise ValueError("need at least one member")
        if ENSEMBLE in member_names:
            raise ValueError(f"a member may not be called {ENSEMBLE!r}")
        monitor = member_names[0] if len(member_names) == 1 else PER_MEMBER
        super().__init__(member_names, monitor=monitor)

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        probs = torch.sigmoid(torch.stack([o.logit for o in outputs]))
        predictions = dict(zip(self.member_names, probs, strict=True))
        if len(outputs) > 1:
            predictions[ENSEMBLE] = probs.mean(dim=0)
        return predictions

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        logits = torch.stack([o.logit for o in outputs])
        bce = F.binary_cross_entropy_with_logits(
            logits, batch.label.unsqueeze(0).expand_as(logits), reduction="none"
        ).mean(dim=1)
        parts: dict[str, float | torch.Tensor] = {
            f"bce/{name}": v for name, v in zip(self.member_names, bce.detach(), strict=True)
        }
        loss = bce.sum() + members_auxiliary_loss(
            outputs, batch.label, bce, self.member_names, parts
        )
        return ObjectiveOutput(loss=loss, predictions=self.predict(outputs), parts=parts)
