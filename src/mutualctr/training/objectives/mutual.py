"""Mutual learning between N CTR models (Yilmaz & Aldemir, 2024, eq. 3).

Model n minimises its own loss

    L_n = BCE(y, p_n) + w / (N - 1) * sum_{i != n} D(p_i, p_n)

with ``D(p_i, p_n) = (p_i - p_n)^2`` (the paper's MSE, batch mean) or, as in the original deep
mutual learning (Zhang et al., "Deep Mutual Learning", CVPR 2018), the Bernoulli KL divergence
``KL(p_i || p_n)``. ``w = 1`` is the paper's setting.

The peers' predictions p_i enter L_n *detached*: they are targets, not variables. The
objective returns ``sum_n L_n``; since model n's parameters appear only in p_n, and p_n appears
undetached only in L_n, the gradient of the sum with respect to model n's parameters is exactly
the gradient of L_n, which is what the paper trains ("each model is updated with its own
loss"). Without the detach, model n would also receive the gradients of its peers' losses
through p_n appearing as their target, i.e. it would be pulled towards its peers twice as hard
and by the peers' own errors. (Summing rather than averaging keeps each model's gradient the
same as if it were trained alone on L_n, which matters for gradient clipping and Adam's eps.)

Predictions: one per member, and ``ensemble``, the mean of the members' probabilities.
Early stopping picks each member's best epoch on its own validation metric (``monitor`` is
per member).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.auxiliary import members_auxiliary_loss
from mutualctr.training.objectives.base import ENSEMBLE, PER_MEMBER, Objective, ObjectiveOutput

Divergence = Literal["mse", "kl"]
DIVERGENCES: tuple[str, ...] = ("mse", "kl")


def pairwise_divergence(logits: torch.Tensor, divergence: Divergence = "mse") -> torch.Tensor:
    """``D[n, i] = batch mean of D(p_i, p_n)`` for logits ``[N, B]``, with p_i detached.

    Row n is what model n is pulled by; gradients flow only into the row's own p_n.
    """
    probs = torch.sigmoid(logits)
    target = probs.detach().unsqueeze(0)  # [1, N(i), B]
    if divergence == "mse":
        return ((target - probs.unsqueeze(1)) ** 2).mean(dim=2)
    if divergence == "kl":
        # KL(p_i || p_n) = p_i (log p_i - log p_n) + (1 - p_i) (log(1 - p_i) - log(1 - p_n)),
        # with log-sigmoids of the logits for numerical stability.
        log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
        log_p_t, log_q_t = log_p.detach().unsqueeze(0), log_q.detach().unsqueeze(0)
        kl = target * (log_p_t - log_p.unsqueeze(1)) + (1 - target) * (
            log_q_t - log_q.unsqueeze(1)
        )
        return kl.mean(dim=2)
    raise ConfigError(f"unknown divergence {divergence!r}; expected one of {list(DIVERGENCES)}")


def mutual_losses(
    logits: torch.Tensor, label: torch.Tensor, weight: float = 1.0,
    divergence: Divergence = "mse",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model BCE ``[N]`` and mutual term ``[N]`` (already multiplied by ``w / (N - 1)``)."""
    n = logits.shape[0]
    if n < 2:
        raise ConfigError(f"mutual learning needs at least 2 models, got {n}")
    bce = F.binary_cross_entropy_with_logits(
        logits, label.unsqueeze(0).expand_as(logits), reduction="none"
    ).mean(dim=1)
    pair = pairwise_divergence(logits, divergence)  # the diagonal is exactly 0
    return bce, weight / (n - 1) * pair.sum(dim=1)


class MutualObjective(Objective):
    """The sum over members of each member's mutual-learning loss (see the module docstring)."""

    def __init__(
        self, member_names: Sequence[str], weight: float = 1.0, divergence: Divergence = "mse"
    ) -> None:
        if len(member_names) < 2:
            raise ConfigError(f"mutual learning needs at least 2 models, got {len(member_names)}")
        if ENSEMBLE in member_names:
            raise ConfigError(f"a member may not be called {ENSEMBLE!r}")
        if divergence not in DIVERGENCES:
            raise ConfigError(
                f"unknown divergence {divergence!r}; expected one of {list(DIVERGENCES)}"
            )
        if weight < 0:
            raise ConfigError(f"mutual weight must be >= 0, got {weight}")
        super().__init__(member_names, monitor=PER_MEMBER)
        self.weight = weight
        self.divergence: Divergence = divergence

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        probs = torch.sigmoid(torch.stack([o.logit for o in outputs]))
        predictions = dict(zip(self.member_names, probs, strict=True))
        predictions[ENSEMBLE] = probs.mean(dim=0)
        return predictions

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        logits = torch.stack([o.logit for o in outputs])
        bce, mutual = mutual_losses(logits, batch.label, self.weight, self.divergence)
        parts: dict[str, float | torch.Tensor] = {}
        # detached 0-d tensors, not floats: no device sync per step
        for name, b, m in zip(self.member_names, bce.detach(), mutual.detach(), strict=True):
            parts[f"bce/{name}"] = b
            parts[f"mutual/{name}"] = m
        # plus a member's own paper loss (FINAL, DCNv3), see .auxiliary
        loss = (bce + mutual).sum() + members_auxiliary_loss(
            outputs, batch.label, bce, self.member_names, parts
        )
        return ObjectiveOutput(loss=loss, predictions=self.predict(outputs), parts=parts)
