"""Logistic regression: the first-order baseline."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig


@dataclass
class LRConfig(ModelConfig):
    """LR's "embedding" is one weight per feature value, so ``embedding_dim`` defaults to 1."""

    embedding_dim: int = 1


class LR(CTRModel):
    """Logistic regression, ``logit = b + sum_f a_f w_f(x_f)``.

    ``h`` is the looked-up per-field weights ``[B, F * embedding_dim]``; the linear head sums
    them (its per-field scales ``a_f`` are redundant with ``w`` and start at the head's random
    init). With ``embedding_dim=1`` this is exactly LR; larger values give a linear model over
    ``D`` weights per value.
    """

    name = "lr"
    config_class = LRConfig

    def build(self) -> int:
        return self.feature_map.num_fields * self.config.embedding_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return emb.flatten(1), None
