"""Factorization machine (Rendle, ICDM 2010)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.layers import LinearTerm, fm_interaction


@dataclass
class FMConfig(ModelConfig):
    """FM has no hyperparameters beyond the embedding."""


class FM(CTRModel):
    """``logit = w_0 + sum_i w_i + sum_{i<j} <v_i, v_j>`` (Rendle 2010, Eq. 1).

    ``h`` is the per-dimension pairwise interaction vector ``sum_{i<j} v_i ⊙ v_j`` ``[B, D]``
    (sum-square identity); the first-order term is the residual. The head starts with unit
    weights and zero bias, so the initial model is exactly FM; training the head's weights
    rescales embedding dimensions, which leaves the model class unchanged.
    """

    name = "fm"
    config_class = FMConfig

    def build(self) -> int:
        self.linear = LinearTerm(self.inputs, self.config.embedding_init_std)
        return self.config.embedding_dim

    def reset_head(self) -> None:
        nn.init.ones_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fm_interaction(emb), self.linear(batch)
