"""CETNet's objective: confidence-based fusion of N models plus collaborative losses.

Liu et al., "A Collaborative Ensemble Framework for CTR Prediction" (Meta, arXiv 2411.13700).
Each of the N models has its own embedding table and emits a representation ``h_n`` and a
logit ``z_n`` (``p_n = sigmoid(z_n)``). Per sample:

* confidence ``C_n = -H(p_n)``, the negative binary entropy, detached from the graph (the
  fusion weights steer the readout; they are not a path for the models' gradients);
* fusion weights ``w = softmax_n(C_n)`` (the paper's "general softmax" over confidences);
* fused representation ``concat_n(w_n * h_n)`` read out by one linear layer to ``p_fused``;
* loss ``BCE(p_fused) + sum_n BCE(p_n) + alpha * L_kl`` (section 3.4.4), where ``L_kl`` is the
  symmetric KL of section 3.3.1 between the models' Bernoulli predictions,
  ``1/2 * [KL(p_i||p_j) + KL(p_j||p_i)]``, averaged over the batch (as the BCE terms are) and,
  for N > 2, over the N(N-1)/2 unordered pairs.

Everything is computed from logits, which keeps the entropies and divergences finite for
saturated predictions: ``H(sigmoid(z)) = softplus(z) - z * sigmoid(z)`` and, for Bernoullis,
``KL(p||q) + KL(q||p) = (p - q) * (logit(p) - logit(q))``.

The fusion consumes only ``ModelOutput``s, so sequence models (DIN, DIEN, InterFormer, DHEN)
plug in unchanged once they emit ``h`` and a logit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.base import Objective, ObjectiveOutput

FusionMode = Literal["confidence", "confidence_sum", "concat", "sum"]
FUSION_MODES: tuple[str, ...] = ("confidence", "confidence_sum", "concat", "sum")
FUSED = "fused"


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(p) = -p log p - (1 - p) log(1 - p)`` of ``p = sigmoid(logits)``, in nats."""
    return F.softplus(logits) - logits * torch.sigmoid(logits)


def confidence(logits: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """``C = -H(sigmoid(logits))``; detached unless ``stop_gradient`` is False (an ablation)."""
    c = -binary_entropy(logits)
    return c.detach() if stop_gradient else c


def fusion_weights(logits: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """Softmax over models (the last axis of ``logits [B, N]``) of their confidences."""
    return torch.softmax(confidence(logits, stop_gradient), dim=-1)


def symmetric_kl(logits: torch.Tensor) -> torch.Tensor:
    """Mean over samples and unordered model pairs of ``1/2 * [KL(p_i||p_j) + KL(p_j||p_i)]``.

    The paper's ``L_kl`` (section 3.3.1) carries the factor 1/2; without it ``alpha`` would
    weigh the term twice. ``logits`` is ``[B, N]`` with ``N >= 2``; for Bernoullis the sum of
    the two KLs equals ``(p_i - p_j) * (z_i - z_j)``.
    """
    n = logits.shape[-1]
    if n < 2:
        raise ValueError(f"symmetric KL needs at least two models, got {n}")
    probs = torch.sigmoid(logits)
    i, j = zip(*itertools.combinations(range(n), 2), strict=True)
    i, j = list(i), list(j)
    return 0.5 * ((probs[:, i] - probs[:, j]) * (logits[:, i] - logits[:, j])).mean()


class ConfidenceFusion(nn.Module):
    """Fuses N representations into one logit.

    Modes:
        ``confidence``: ``readout(concat_n(w_n * h_n))`` with confidence weights (the paper's).
        ``confidence_sum``: ``readout(sum_n w_n * h_n)``.
        ``concat``: ``readout(concat_n(h_n))``, no weighting.
        ``sum``: ``readout(sum_n h_n)``, no weighting.

    The sum modes need one size: when the models' representation sizes differ, each ``h_n`` is
    first mapped by its own bias-free linear projection to the largest size (when all sizes are
    equal no projection is made).
    """

    def __init__(
        self,
        representation_dims: Sequence[int],
        mode: FusionMode = "confidence",
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ConfigError(f"fusion must be one of {list(FUSION_MODES)}, got {mode!r}")
        if len(representation_dims) < 1:
            raise ConfigError("fusion needs at least one model")
        self.mode = mode
        self.stop_gradient = stop_gradient
        self.weighted = mode.startswith("confidence")
        self.summed = mode.endswith("sum")
        dims = list(representation_dims)
        width = max(dims)
        self.projections: nn.ModuleList | None = None
        if self.summed and len(set(dims)) > 1:
            self.projections = nn.ModuleList(nn.Linear(d, width, bias=False) for d in dims)
        self.readout = nn.Linear(width if self.summed else sum(dims), 1)

    def forward(
        self, hs: Sequence[torch.Tensor], logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(fused logit [B], weights [B, N])`` from ``hs`` (N x ``[B, H_n]``) and the
        models' ``logits [B, N]``; the weights are all ones when the mode is unweighted."""
        if self.weighted:
            weights = fusion_weights(logits, self.stop_gradient)
        else:
            weights = torch.ones_like(logits)
        parts = list(hs)
        if self.projections is not None:
            parts = [proj(h) for proj, h in zip(self.projections, parts, strict=True)]
        parts = [w.unsqueeze(-1) * h for w, h in zip(weights.unbind(-1), parts, strict=True)]
        fused = torch.stack(parts).sum(0) if self.summed else torch.cat(parts, dim=-1)
        return self.readout(fused).squeeze(-1), weights


class CETNetObjective(Objective):
    """``BCE(p_fused) + [sum_n BCE(p_n)] + alpha * L_kl`` over a group of N models.

    Args:
        member_names: the models' names, in the group's order.
        representation_dims: the models' ``h`` sizes, in the same order.
        alpha: weight of the symmetric KL :func:`symmetric_kl` (the paper tries 0.1, 0.5,
            1.0); 0 drops it.
        fusion: see :class:`ConfidenceFusion`.
        stop_gradient: detach the confidences (the paper's choice; False is an ablation).
        member_losses: add each model's own BCE (False: only the fused prediction is trained,
            the "+ concat" ensemble baselines).

    Predictions: ``fused`` (monitored) and one per member.
    """

    def __init__(
        self,
        member_names: Sequence[str],
        representation_dims: Sequence[int],
        alpha: float = 0.1,
        fusion: FusionMode = "confidence",
        stop_gradient: bool = True,
        member_losses: bool = True,
    ) -> None:
        super().__init__(member_names, monitor=FUSED)
        if FUSED in member_names:
            raise ConfigError(f"a member may not be called {FUSED!r}")
        if len(member_names) != len(representation_dims):
            raise ConfigError(
                f"{len(member_names)} member names but {len(representation_dims)} "
                "representation sizes"
            )
        if alpha < 0:
            raise ConfigError(f"alpha must be >= 0, got {alpha}")
        if alpha > 0 and len(member_names) < 2:
            raise ConfigError("the symmetric KL needs at least two models; set alpha to 0")
        self.alpha = alpha
        self.member_losses = member_losses
        self.fusion = ConfidenceFusion(representation_dims, fusion, stop_gradient)

    def _fuse(
        self, outputs: Sequence[ModelOutput]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fused logit [B], member logits [B, N], fusion weights [B, N])``."""
        logits = torch.stack([o.logit for o in outputs], dim=-1)  # [B, N]
        fused, weights = self.fusion([o.h for o in outputs], logits)
        return fused, logits, weights

    def _predictions(self, fused: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        predictions = {FUSED: torch.sigmoid(fused)}
        for name, z in zip(self.member_names, logits.unbind(-1), strict=True):
            predictions[name] = torch.sigmoid(z)
        return predictions

    def predict(self, outputs: Sequence[ModelOutput]) -> dict[str, torch.Tensor]:
        fused, logits, _ = self._fuse(outputs)
        return self._predictions(fused, logits)

    def forward(self, outputs: Sequence[ModelOutput], batch: Batch) -> ObjectiveOutput:
        fused, logits, weights = self._fuse(outputs)
        labels = batch.label
        fused_bce = F.binary_cross_entropy_with_logits(fused, labels)
        loss = fused_bce
        parts = {"bce_fused": fused_bce.detach()}
        if self.fusion.weighted:  # the batch's mean fusion weight of each member
            for name, w in zip(self.member_names, weights.detach().mean(0), strict=True):
                parts[f"fusion_weight/{name}"] = w
        if self.member_losses:
            member_bce = F.binary_cross_entropy_with_logits(
                logits, labels.unsqueeze(-1).expand_as(logits), reduction="none"
            ).mean(0).sum()
            loss = loss + member_bce
            parts["bce_members"] = member_bce.detach()
        if self.alpha > 0:
            skl = symmetric_kl(logits)
            loss = loss + self.alpha * skl
            parts["symmetric_kl"] = skl.detach()
        return ObjectiveOutput(loss=loss, predictions=self._predictions(fused, logits), parts=parts)
