"""FiBiNET (Huang et al., RecSys 2019): SENET field importance and bilinear interactions."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import SENet
from mutualctr.models.layers.bilinear import BilinearInteraction, BilinearType
from mutualctr.models.layers.linear import LinearTerm
from mutualctr.models.layers.pairs import num_pairs


@dataclass
class FiBiNETConfig(MLPModelConfig):
    """Defaults: MLP [400, 200, 100] (mutual-learning paper); reduction ratio 3,
    ``field_interaction`` bilinear and a linear part (FuxiCTR's defaults)."""

    reduction_ratio: float = param(3.0, gt=0.0)
    bilinear_type: BilinearType = "field_interaction"
    shared_bilinear: bool = False
    use_linear: bool = True


class FiBiNET(CTRModel):
    """``h = MLP([bilinear(emb) || bilinear(SENET(emb))])`` (Huang et al. 2019, Fig. 1).

    The two bilinear interactions have their own weights unless ``shared_bilinear`` (the paper
    leaves this open; FuxiCTR uses two); both run as one grouped layer. The paper's deep
    variant adds a first-order linear part to the output (Eq. 13), returned as the residual
    logit when ``use_linear``.
    """

    name = "fibinet"
    config_class = FiBiNETConfig

    def build(self) -> int:
        c = self.config
        fields, dim = self.num_fields, c.embedding_dim
        self.senet = SENet(fields, c.reduction_ratio)
        self.bilinear = BilinearInteraction(
            fields, dim, c.bilinear_type, groups=2, shared=c.shared_bilinear
        )
        if c.use_linear:
            self.linear = LinearTerm(self.inputs, c.embedding_init_std)
        self.mlp = c.make_mlp(2 * num_pairs(fields) * dim)
        return self.mlp.out_dim

    def represent(
        self, batch: Batch, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        both = torch.cat([emb, self.senet(emb)], dim=1)  # [B, 2F, D]
        h = self.mlp(self.bilinear(both).flatten(1))  # [p || q] in one tensor
        return h, self.linear(batch) if self.config.use_linear else None
