"""Knowledge-transfer baselines EKTF is compared with (Table 5 of Li et al.), as objectives over
a group of students that share one embedding.

Distillation in binary CTR uses the Bernoulli form of Hinton's soft targets: the student's
logit and the teacher's logit are divided by a temperature ``T`` and the student minimises
``T^2 * BCE(sigmoid(z_teacher / T), sigmoid(z_student / T))`` with the teacher detached.
Every group objective (Online KD, KDCL, ECKD) reports a ``teacher`` prediction (what early
stopping watches) and one per member. Choices where the papers leave something open (or are
about image classification) are stated on each class.

KD-DAGFM (Tian et al., WSDM 2023) is not a group of students but a pipeline: a complex
teacher trained alone, then a DAGFM student (:mod:`mutualctr.models.dagfm`) distilled from it
over the teacher's frozen embedding, then the student finetuned alone.
:class:`DAGFMDistillation` is the loss of the middle phase (logit MSE, not soft BCE);
:data:`mutualctr.methods.dagfm.METHOD` runs the three phases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.base import Objective, ObjectiveOutput
from mutualctr.training.objectives.ektf import TEACHER


def soft_bce(student_logit: torch.Tensor, teacher_logit: torch.Tensor, temperature: float
             ) -> torch.Tensor:
    """``T^2 * BCE(sigmoid(z_t / T), sigmoid(z_s / T))``, teacher detached (Hinton et al.'s
    T^2 keeps the gradient scale independent of T)."""
    target = torch.sigmoid(teacher_logit.detach() / temperature)
    return temperature**2 * F.binary_cross_entropy_with_logits(student_logit / temperature, target)


def bce(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logit, label)


class _GroupDistillation(Objective):
    """Shared plumbing: validates members, stacks logits, predicts teacher + members."""

    def __init__(self, member_names: Sequence[str], temperature: float, alpha: float,
                 min_members: int = 2) -> None:
        if len(member_names) < min_members:
            raise ConfigError(
                f"{type(self).__name__} needs at least {min_members} members, "
                f"got {len(member_names)}"
            )
        if TEACHER in member_names:
            raise ConfigError(f"a member may not be called {TEACHER!r}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        super().__init__(member_names, monitor=TEACHER)
        self.temperature = temperature
        self.alpha = alpha

    def teacher_logit(self, outputs: Sequence[ModelOutput]) -> torch.Tensor:
        """The label-free ensemble logit used at inference; the mean logit by default."""
        return torch.stack([o.logit for o in outputs]).mean(dim=0)

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        return self._predictions(outputs, self.teacher_logit(outputs))

    def _predictions(self, outputs: Sequence[ModelOutput], teacher: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        predictions = {TEACHER: torch.sigmoid(teacher)}
        for name, output in zip(self.member_names, outputs, strict=True):
            predictions[name] = torch.sigmoid(output.logit)
        return predictions

    def _output(self, outputs: Sequence[ModelOutput], teacher: torch.Tensor,
                parts: dict[str, torch.Tensor]) -> ObjectiveOutput:
        """The loss is the sum of ``parts``; ``teacher`` is the label-free ensemble logit."""
        return ObjectiveOutput(
            loss=torch.stack(list(parts.values())).sum(),
            predictions=self._predictions(outputs, teacher.detach()),
            parts={name: value.detach() for name, value in parts.items()},
        )


class OnlineKD(_GroupDistillation):
    """Online distillation from the group's running ensemble (ONE, Lan et al., NeurIPS 2018).

    Teacher: the mean of the members' logits (ONE's learned gate is replaced by the mean, which
    makes this the "online KD" baseline without ECKD's gate; the shared embedding plays the
    part of ONE's shared low-level layers). Loss: ``BCE(y, teacher) + mean_k [BCE(y, p_k) +
    alpha * soft_bce(p_k <- teacher)]``.
    """

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        teacher = self.teacher_logit(outputs)
        members = [o.logit for o in outputs]
        parts = {
            "bce_teacher": bce(teacher, batch.label),
            "bce": torch.stack([bce(z, batch.label) for z in members]).mean(),
            "kd": self.alpha * torch.stack(
                [soft_bce(z, teacher, self.temperature) for z in members]
            ).mean(),
        }
        return self._output(outputs, teacher, parts)


class KDCL(_GroupDistillation):
    """KDCL-MinLogit (Guo et al., "Online Knowledge Distillation via Collaborative Learning",
    CVPR 2020), specialised to one logit.

    MinLogit subtracts each network's target-class logit from all its logits and takes the
    element-wise minimum over networks. With two classes whose logits are ``(0, z)`` this gives
    the teacher logit ``max_k z_k`` for a click and ``min_k z_k`` otherwise: each example is
    taught by the member most confident in the right answer. The label-built teacher is only
    usable in training; the reported ``teacher`` is the mean logit (label-free). KDCL's
    per-network input augmentations have no CTR analogue and are left out.
    """

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        logits = torch.stack([o.logit for o in outputs])
        clicked = batch.label > 0.5
        teacher = torch.where(clicked, logits.max(dim=0).values, logits.min(dim=0).values)
        parts = {
            "bce": torch.stack([bce(z, batch.label) for z in logits]).mean(),
            "kd": self.alpha * torch.stack(
                [soft_bce(z, teacher, self.temperature) for z in logits]
            ).mean(),
        }
        return self._output(outputs, logits.mean(dim=0), parts)


class ECKD(_GroupDistillation):
    """ECKD (Zhu et al., "Ensembled CTR Prediction via Knowledge Distillation", CIKM 2020):
    teachers fused by a gating network, the fused teacher distilled into a student.

    The last member is the student, the others are teachers (so K >= 3). The gate is a linear
    layer with softmax over the teachers' concatenated representations ``h`` (the paper gates on
    the input embedding; an objective sees only the members' outputs, and ``h`` is computed from
    that embedding). Teachers and student train together (the paper's joint-training option):
    ``BCE(y, gated teacher) + mean_teachers BCE(y, p_i) + BCE(y, p_s) + alpha * soft_bce(p_s <-
    gated teacher)``. The reported ``teacher`` is the gated ensemble.
    """

    def __init__(self, member_names: Sequence[str], representation_dims: Sequence[int],
                 temperature: float = 1.0, alpha: float = 1.0) -> None:
        super().__init__(member_names, temperature, alpha, min_members=3)
        if len(representation_dims) != len(member_names):
            raise ConfigError("ECKD needs one representation size per member")
        self.gate = nn.Linear(sum(representation_dims[:-1]), len(member_names) - 1)

    def teacher_logit(self, outputs: Sequence[ModelOutput]) -> torch.Tensor:
        teachers = outputs[:-1]
        weights = torch.softmax(self.gate(torch.cat([o.h for o in teachers], dim=1)), dim=1)
        return (weights * torch.stack([o.logit for o in teachers], dim=1)).sum(dim=1)

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        teacher = self.teacher_logit(outputs)
        student = outputs[-1].logit
        parts = {
            "bce_teacher": bce(teacher, batch.label),
            "bce": torch.stack([bce(o.logit, batch.label) for o in outputs[:-1]]).mean(),
            "bce_student": bce(student, batch.label),
            "kd": self.alpha * soft_bce(student, teacher, self.temperature),
        }
        return self._output(outputs, teacher, parts)


# KD-DAGFM's loss weights: alpha on the student's BCE, beta on the logit MSE. These are the
# values of the RecBole port of the authors' code (RUCAIBox/RecBole,
# recbole/properties/model/KD_DAGFM.yaml: alpha 1, beta 92.16; its kd_dagfm.py computes
# alpha * ctr_loss + beta * kd_loss, so alpha weights the BCE although the yaml's comments say
# otherwise). The authors' own repository (chenyuwuxin/DAGFM) could not be read here; the pair
# 0.1 / 921.6 quoted for it earlier in this project could not be checked, so the port's
# documented defaults are used.
DAGFM_ALPHA = 1.0
DAGFM_BETA = 92.16


class DAGFMDistillation(Objective):
    """KD-DAGFM's distillation phase (Tian et al., WSDM 2023): members ``[teacher, student]``.

    ``loss = alpha * BCE(y, sigmoid(z_s)) + beta * mean((z_t - z_s)^2)`` over the batch, on the
    logits ``z``, with the teacher's logit detached. Defaults: :data:`DAGFM_ALPHA`,
    :data:`DAGFM_BETA`. Freezing the teacher and the shared
    embedding (the authors detach it) is the group's job
    (:class:`mutualctr.methods.ektf.DistillationGroup`); this objective only keeps the
    teacher's logit out of the gradient.

    Predictions: one per member, by its name. There is no ensemble, so no ``teacher``
    prediction in the KD baselines' sense (that name means the group's combined prediction);
    early stopping and best-epoch selection watch the student.
    """

    def __init__(self, member_names: Sequence[str], alpha: float = DAGFM_ALPHA,
                 beta: float = DAGFM_BETA) -> None:
        if len(member_names) != 2:
            raise ConfigError(f"DAGFMDistillation needs [teacher, student], got "
                              f"{list(member_names)}")
        if alpha < 0 or beta < 0:
            raise ConfigError(f"alpha and beta must be >= 0, got {alpha} and {beta}")
        super().__init__(member_names, monitor=member_names[1])
        self.alpha = alpha
        self.beta = beta

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        return {name: torch.sigmoid(o.logit)
                for name, o in zip(self.member_names, outputs, strict=True)}

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        teacher, student = outputs[0].logit.detach(), outputs[1].logit
        parts = {
            "bce": self.alpha * bce(student, batch.label),
            "kd": self.beta * (teacher - student).pow(2).mean(),
        }
        return ObjectiveOutput(
            loss=parts["bce"] + parts["kd"],
            predictions={name: p.detach() for name, p in self.predict(outputs).items()},
            parts={name: value.detach() for name, value in parts.items()},
        )
