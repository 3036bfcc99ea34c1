"""ECN: the exponential cross network of DCNv3 used on its own (Li et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.layers import CrossNetworkV3, split_heads


@dataclass
class ECNConfig(ModelConfig):
    """Defaults: FuxiCTR's ECN/DCNv3 (4 layers, layer-norm self-mask, dropout 0.1, 1 head)."""

    num_cross_layers: int = param(4, ge=1)
    dropout: float = param(0.1, ge=0.0, lt=1.0)
    layer_norm: bool = True
    num_heads: int = param(1, ge=1)


class ECN(CTRModel):
    """``h = mean over heads of x_{2^L}`` from the exponential cross network over the
    multi-head embedding. The authors' per-head logits averaged over heads equal the linear
    head on this mean."""

    name = "ecn"
    config_class = ECNConfig

    def build(self) -> int:
        c = self.config
        width = self.flat_dim // c.num_heads
        self.ecn = CrossNetworkV3(width, c.num_cross_layers, True, c.layer_norm, c.dropout)
        return width

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.ecn(split_heads(emb, self.config.num_heads)).mean(dim=1), None
