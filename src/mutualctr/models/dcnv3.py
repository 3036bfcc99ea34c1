"""DCNv3 (Li et al., 2024): exponential (deep) and linear (shallow) cross networks together."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import AuxiliaryLoss, CTRModel, ModelConfig
from mutualctr.models.layers import CrossNetworkV3, split_heads


@dataclass
class DCNv3Config(ModelConfig):
    """Defaults: FuxiCTR's DCNv3 (4 deep and 4 shallow layers, dropout 0.1 / 0.3, layer-norm
    self-mask, 1 head). ``tri_bce``: the paper's training loss
    (:mod:`mutualctr.training.objectives.auxiliary`)."""

    num_deep_cross_layers: int = param(4, ge=1)
    num_shallow_cross_layers: int = param(4, ge=1)
    deep_dropout: float = param(0.1, ge=0.0, lt=1.0)
    shallow_dropout: float = param(0.3, ge=0.0, lt=1.0)
    layer_norm: bool = True
    num_heads: int = param(1, ge=1)
    tri_bce: bool = True


class DCNv3(CTRModel):
    """``h = [mean_heads ECN(x_1) || mean_heads LCN(x_1)]``.

    The paper's prediction is the mean of the two sub-networks' logits; the linear head on the
    concatenation is that mean, each network's part of it being its own logit
    (:func:`~mutualctr.models.base.split_head_logits`), on which Tri-BCE puts its extra terms.
    """

    name = "dcnv3"
    config_class = DCNv3Config

    def build(self) -> int:
        c = self.config
        width = self.flat_dim // c.num_heads
        self.ecn = CrossNetworkV3(
            width, c.num_deep_cross_layers, True, c.layer_norm, c.deep_dropout
        )
        self.lcn = CrossNetworkV3(
            width, c.num_shallow_cross_layers, False, c.layer_norm, c.shallow_dropout
        )
        return 2 * width

    def auxiliary(self) -> tuple[AuxiliaryLoss, tuple[int, ...]]:
        if self.config.tri_bce:
            width = self.representation_dim // 2
            return "tri_bce", (width, width)
        return "none", ()

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        x1 = split_heads(emb, self.config.num_heads)
        h = torch.cat([self.ecn(x1).mean(dim=1), self.lcn(x1).mean(dim=1)], dim=1)
        return h, None
