"""EKTF: ensemble knowledge transfer with an examination mechanism (Li et al., 2024,
"Ensemble Learning via Knowledge Transfer for CTR Prediction").

K students share one embedding (see :mod:`mutualctr.training.groups.shared_embedding`); the mean of
their logits is an *abstract teacher* ``p_t = sigmoid(mean_k z_k)``. The loss is

    L = mean_k BCE(y, p_k)                                   (students learn from the label)
      + sum_k lambda_k * MSE(p_t, p_k)                        (teacher -> student, "KD")
      + mean_k sum_{l != k} mu_{k,l} * MSE(p_l, p_k)          (student -> student, "DML")

with the teacher and peer predictions as detached targets. The *examination* sets the weights
from each student's batch score ``S_k = mean_b (1 - |y_b - p_{k,b}|)`` (higher is better):
``lambda = softmin(S)`` (weak students get more teaching) and ``mu_{k,.} = softmax_{l != k}
(S_l - S_k)`` (a student learns more from stronger peers; the ``- S_k`` shift cancels inside
the softmax, so ``mu_{k,.}`` is the softmax of the peers' scores).

``detach_weights``: the authors' public code (salmon1802/KDEF, ``src/EKTF.py``) computes S from
the students' live predictions and never detaches it, so gradients also flow through lambda
and mu. That adds a term that moves the students' scores so as to shift weight towards the
students whose distillation loss is already small; it is the default here. ``detach_weights=
True`` treats lambda and mu as constants (the reading of the paper's equations). Under DDP each
rank computes S on its own shard of the batch, exactly as one process does on one batch; S
is *not* all-reduced, because the default lets gradients flow through S and an all-reduce
would break that graph (and the per-rank S is already an unbiased estimate of the same mean).

Two details of the public code are left out on purpose: ``EKTF.py`` flips 5% of the training
labels at random (``threshold=0.05``, not in the paper, absent from ``EKTF_L.py``), and it
applies BCE to probabilities; here BCE takes logits (the same value, numerically stable).

Ablations (Table 3 of the paper, section 4.3.1) switch the terms off: ``only_kd`` (no DML),
``only_dml`` (no KD), ``no_examination`` (lambda = 1/K, mu = 1/(K-1)) and ``mean`` ("w/o all":
"the ensemble is performed using only the mean operation").

``mean`` is the plain mean ensemble of section 3.1 (eq. 1 with Ensemble = Mean), trained as one
model: the only loss is ``BCE(y, p_t)`` on the teacher ``p_t = sigmoid(mean_k z_k)``, with
gradients reaching every student through ``p_t``; the students get no label loss of their own
and there is no distillation. Why this reading and not "students trained on the label, then
averaged": section 3.1 describes the ensembles it starts from as CTR models that fuse their
sub-networks' predictions by sum, mean or concatenation (DeepFM, FINAL, ECN ...), which train on
the fused output, and eq. 2 keeps ``L_CTR(y_t)`` on the teacher; the authors' published logs of
this baseline (salmon1802/KDEF, ``checkpoints/Criteo_x4_10_h5/MLP_mean_Criteo_*.log``: two MLP
students, "Train loss" tracking the teacher's logloss) show students far below their mean
(test logloss 0.4508 and 0.4509 against the teacher's 0.4383, AUC 0.8042 and 0.8016 against
0.8140), which independently trained students would not be. The mean is over logits, as in the
same code's ``forward`` (``EKTF.py``) that prints these logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.base import Objective, ObjectiveOutput

TEACHER = "teacher"


def examination_scores(probs: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``S_k = mean_b (1 - |y_b - p_{k,b}|)`` for probabilities ``[K, B]``; returns ``[K]``."""
    return (1.0 - (label.unsqueeze(0) - probs).abs()).mean(dim=1)


def teacher_weights(scores: torch.Tensor) -> torch.Tensor:
    """``lambda = softmin(S)``: the weakest student gets the most teaching."""
    return torch.softmax(-scores, dim=0)


def peer_weights(scores: torch.Tensor) -> torch.Tensor:
    """``mu[k, l] = softmax_{l != k}(S_l - S_k)``, ``mu[k, k] = 0``; returns ``[K, K]``."""
    k = scores.shape[0]
    diff = scores.unsqueeze(0) - scores.unsqueeze(1)  # diff[k, l] = S_l - S_k
    eye = torch.eye(k, dtype=torch.bool, device=scores.device)
    return torch.softmax(diff.masked_fill(eye, float("-inf")), dim=1)


def uniform_weights(k: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ablation without examination: ``lambda = 1/K``, ``mu = 1/(K-1)`` off the diagonal
    (dtype and device of ``like``)."""
    lam = like.new_full((k,), 1.0 / k)
    mu = (1.0 - torch.eye(k, dtype=like.dtype, device=like.device)) / (k - 1)
    return lam, mu


@dataclass(frozen=True)
class EKTFTerms:
    """Which parts of the loss are on; see :data:`VARIANTS`."""

    kd: bool = True
    dml: bool = True
    examination: bool = True
    label_on_teacher: bool = False  # BCE on the mean ensemble instead of on each student


VARIANTS: dict[str, EKTFTerms] = {
    "ektf": EKTFTerms(),
    "only_kd": EKTFTerms(dml=False),
    "only_dml": EKTFTerms(kd=False),
    "no_examination": EKTFTerms(examination=False),
    "mean": EKTFTerms(kd=False, dml=False, examination=False, label_on_teacher=True),
}


def ektf_loss(
    logits: torch.Tensor,
    label: torch.Tensor,
    terms: EKTFTerms = EKTFTerms(),
    detach_weights: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """EKTF loss for students' logits ``[K, B]`` and labels ``[B]``.

    Returns the loss and its parts (``bce``: the students' mean BCE, or the teacher's with
    ``terms.label_on_teacher``; ``kd``, ``dml`` and the weights ``lambda`` ``[K]`` and ``mu``
    ``[K, K]``).
    """
    k = logits.shape[0]
    probs = torch.sigmoid(logits)
    ensemble = logits.mean(dim=0)
    if terms.label_on_teacher:
        bce = F.binary_cross_entropy_with_logits(ensemble, label)
    else:
        bce = F.binary_cross_entropy_with_logits(logits, label.unsqueeze(0).expand_as(logits))
    if terms.examination:
        scores = examination_scores(probs, label)
        if detach_weights:
            scores = scores.detach()
        lam, mu = teacher_weights(scores), peer_weights(scores)
    else:
        lam, mu = uniform_weights(k, logits)
    teacher = torch.sigmoid(ensemble).detach()
    kd_each = ((teacher.unsqueeze(0) - probs) ** 2).mean(dim=1)  # [K]
    # pair[k, l] = MSE(p_l (detached target), p_k)
    pair = ((probs.detach().unsqueeze(0) - probs.unsqueeze(1)) ** 2).mean(dim=2)
    parts = {
        "bce": bce,
        "kd": (lam * kd_each).sum() if terms.kd else logits.new_zeros(()),
        "dml": (mu * pair).sum(dim=1).mean() if terms.dml else logits.new_zeros(()),
        "lambda": lam,
        "mu": mu,
    }
    return parts["bce"] + parts["kd"] + parts["dml"], parts


class EKTFObjective(Objective):
    """EKTF (or one of its ablations) over a group of K >= 2 students.

    Predictions: ``teacher`` (sigmoid of the mean logit; early stopping watches it) and one per
    student, so evaluation reports the teacher and every student each epoch.
    """

    def __init__(
        self,
        member_names: Sequence[str],
        variant: str = "ektf",
        detach_weights: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown EKTF variant {variant!r}; expected one of {list(VARIANTS)}")
        if len(member_names) < 2:
            raise ConfigError(f"EKTF needs at least 2 students, got {len(member_names)}")
        if TEACHER in member_names:
            raise ConfigError(f"a student may not be called {TEACHER!r}")
        super().__init__(member_names, monitor=TEACHER)
        self.variant = variant
        self.terms = VARIANTS[variant]
        self.detach_weights = detach_weights

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        logits = torch.stack([o.logit for o in outputs])
        predictions = {TEACHER: torch.sigmoid(logits.mean(dim=0))}
        for name, logit in zip(self.member_names, logits, strict=True):
            predictions[name] = torch.sigmoid(logit)
        return predictions

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        logits = torch.stack([o.logit for o in outputs])
        loss, parts = ektf_loss(logits, batch.label, self.terms, self.detach_weights)
        # detached 0-d tensors, not floats: no device sync per step
        scalars = {name: parts[name].detach() for name in ("bce", "kd", "dml")}
        lam, mu = parts["lambda"].detach(), parts["mu"].detach()
        for k, name in enumerate(self.member_names):
            scalars[f"lambda/{name}"] = lam[k]
            for j, peer in enumerate(self.member_names):
                if j != k:
                    scalars[f"mu/{name}/{peer}"] = mu[k, j]  # how much `name` learns from `peer`
        return ObjectiveOutput(loss=loss, predictions=self.predict(outputs), parts=scalars)
