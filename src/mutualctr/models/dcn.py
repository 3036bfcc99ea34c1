"""Deep & Cross Network (Wang et al., ADKDD 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import CrossNetwork


@dataclass
class DCNConfig(MLPModelConfig):
    """Defaults: the mutual-learning paper's MLP [400, 200, 100]; 3 cross layers (FuxiCTR)."""

    num_cross_layers: int = param(3, ge=1)


class DCN(CTRModel):
    """Cross network and DNN in parallel over ``x_0 = flatten(emb)`` (Wang et al. 2017, Fig. 1).

    ``h = [x_L || MLP(x_0)]``, the paper's "combination layer" input; the head is its
    combination layer's linear output unit (Eq. 5).
    """

    name = "dcn"
    config_class = DCNConfig

    def build(self) -> int:
        self.cross = CrossNetwork(self.flat_dim, self.config.num_cross_layers)
        self.mlp = self.config.make_mlp(self.flat_dim)
        return self.flat_dim + self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        x0 = emb.flatten(1)
        return torch.cat([self.cross(x0), self.mlp(x0)], dim=1), None
