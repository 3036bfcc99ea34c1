"""Knowledge distillation of one student from an ensemble of trained teachers (Hinton, Vinyals
and Dean, "Distilling the Knowledge in a Neural Network", 2015), in the Bernoulli form of CTR.

Members are ``[teacher_1, ..., teacher_K, student]``; the teachers are frozen (the group's job)
and their outputs are detached here as well. With temperature ``T`` and weight ``w``::

    q_T  = mean_k sigmoid(z_k / T)                      (the teachers' soft targets)
    loss = (1 - w) * BCE(y, sigmoid(z_s)) + w * T^2 * BCE(q_T, sigmoid(z_s / T))

Hinton et al. write the objective as a weighted average of the hard-label and the soft-target
cross-entropies and scale the soft term by ``T^2`` so its gradients keep their size as ``T``
changes (section 2); their ensemble's soft targets are the arithmetic mean of the members'
softened distributions (section 2.1: "the arithmetic or geometric mean"). We take the
arithmetic mean of probabilities, so at ``T = 1`` the target is the teachers' averaging
ensemble, the baseline the collaborative papers compare with. The soft term is the
cross-entropy, not the KL divergence: the two differ by the targets' entropy, a constant for
the student, so their gradients are equal.

Predictions: the student under its name (what early stopping watches) and the teachers' mean
at ``T = 1`` as ``ensemble``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.base import ENSEMBLE, Objective, ObjectiveOutput


def soft_targets(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``mean_k sigmoid(z_k / T)`` over the first axis of ``teacher_logits`` ``[K, B]``."""
    return torch.sigmoid(teacher_logits.detach() / temperature).mean(dim=0)


class EnsembleDistillation(Objective):
    """``(1 - w) * BCE(y, p_s) + w * T^2 * BCE(q_T, p_s^T)`` (see the module docstring).

    Args:
        member_names: the teachers' names, then the student's.
        temperature: ``T > 0``.
        weight: ``w`` in [0, 1], the soft term's share.
    """

    def __init__(self, member_names: Sequence[str], temperature: float = 1.0,
                 weight: float = 0.5) -> None:
        if len(member_names) < 2:
            raise ConfigError(f"distillation needs at least one teacher and a student, got "
                              f"{list(member_names)}")
        if ENSEMBLE in member_names:
            raise ConfigError(f"a member may not be called {ENSEMBLE!r}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"weight must be in [0, 1], got {weight}")
        super().__init__(member_names, monitor=member_names[-1])
        self.temperature = temperature
        self.weight = weight

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        teachers = torch.stack([o.logit for o in outputs[:-1]])
        return {self.member_names[-1]: torch.sigmoid(outputs[-1].logit),
                ENSEMBLE: soft_targets(teachers, 1.0)}

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        student = outputs[-1].logit
        targets = soft_targets(torch.stack([o.logit for o in outputs[:-1]]), self.temperature)
        t = self.temperature
        parts = {
            "bce": (1.0 - self.weight) * F.binary_cross_entropy_with_logits(student, batch.label),
            "kd": self.weight * t**2 * F.binary_cross_entropy_with_logits(student / t, targets),
        }
        return ObjectiveOutput(
            loss=parts["bce"] + parts["kd"],
            predictions={name: p.detach() for name, p in self.predict(outputs).items()},
            parts={name: value.detach() for name, value in parts.items()},
        )
