"""DCN-V2 (Wang et al., WWW 2021): full-matrix, low-rank or mixture-of-experts cross layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import CrossNetworkV2


@dataclass
class DCNv2Config(MLPModelConfig):
    """Defaults: FuxiCTR/BARS (parallel, 3 cross layers, MLP [400, 400, 400], full rank).

    ``low_rank > 0`` gives the paper's low-rank cross layers (DCN-Mix with ``num_experts > 1``;
    the paper's mixture uses rank 32 and 4 experts).
    """

    hidden_units: tuple[int, ...] = (400, 400, 400)
    structure: Literal["parallel", "stacked", "cross_only"] = "parallel"
    num_cross_layers: int = param(3, ge=1)
    low_rank: int = param(0, ge=0)  # 0 = full rank
    num_experts: int = param(1, ge=1)


class DCNv2(CTRModel):
    """DCN-V2 over ``x_0 = flatten(emb)``.

    ``stacked``: ``h = MLP(cross(x_0))`` (Fig. 2a); ``parallel``:
    ``h = [cross(x_0) || MLP(x_0)]`` (Fig. 2b); ``cross_only``: ``h = cross(x_0)``.
    """

    name = "dcnv2"
    config_class = DCNv2Config

    def build(self) -> int:
        c = self.config
        self.cross = CrossNetworkV2(self.flat_dim, c.num_cross_layers, c.low_rank, c.num_experts)
        if c.structure == "cross_only":
            return self.flat_dim
        self.mlp = c.make_mlp(self.flat_dim)
        return self.mlp.out_dim + (self.flat_dim if c.structure == "parallel" else 0)

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        x0 = emb.flatten(1)
        crossed = self.cross(x0)
        if self.config.structure == "stacked":
            return self.mlp(crossed), None
        if self.config.structure == "parallel":
            return torch.cat([crossed, self.mlp(x0)], dim=1), None
        return crossed, None
