"""AutoInt and AutoInt+ (Song et al., CIKM 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import FieldSelfAttention


@dataclass
class AutoIntConfig(MLPModelConfig):
    """Defaults: the paper's 3 interacting layers, 2 heads of size 32, residual connections,
    unscaled attention. ``hidden_units`` is AutoInt+'s DNN; empty (the default) is AutoInt."""

    hidden_units: tuple[int, ...] = ()
    num_layers: int = param(3, ge=1)
    num_heads: int = param(2, ge=1)
    head_dim: int = param(32, ge=1)
    residual: bool = True
    scale: bool = False
    layer_norm: bool = False


class AutoInt(CTRModel):
    """``h = flatten(attention^L(emb))`` (Eq. 9's input), concatenated with
    ``MLP(flatten(emb))`` for AutoInt+ (Sec. 5.6's joint model)."""

    name = "autoint"
    config_class = AutoIntConfig

    def build(self) -> int:
        c = self.config
        layers = []
        dim = c.embedding_dim
        for _ in range(c.num_layers):
            layer = FieldSelfAttention(dim, c.head_dim, c.num_heads, c.residual, c.scale,
                                       c.layer_norm)
            layers.append(layer)
            dim = layer.out_dim
        self.attention = nn.Sequential(*layers)
        self.mlp = c.make_mlp(self.flat_dim) if c.hidden_units else None
        width = self.num_fields * dim
        return width + (self.mlp.out_dim if self.mlp is not None else 0)

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        h = self.attention(emb).flatten(1)
        if self.mlp is not None:
            h = torch.cat([h, self.mlp(emb.flatten(1))], dim=1)
        return h, None
