"""DCNv3 (Li et al., 2024): exponential (deep) and linear (shallow) cross networks together."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.layers import CrossNetworkV3, split_heads


@dataclass
class DCNv3Config(ModelConfig):
    """Defaults: FuxiCTR's DCNv3 (4 deep and 4 shallow layers, dropout 0.1 / 0.3, layer-norm
    self-mask, 1 head)."""

    num_deep_cross_layers: int = 4
    num_shallow_cross_layers: int = 4
    deep_dropout: float = 0.1
    shallow_dropout: float = 0.3
    layer_norm: bool = True
    num_heads: int = 1


class DCNv3(CTRModel):
    """``h = [mean_heads ECN(x_1) || mean_heads LCN(x_1)]``.

    The paper's prediction is the mean of the two sub-networks' logits; the linear head on the
    concatenation learns that sum. Its Tri-BCE loss (extra BCE terms on each sub-network's own
    logit) is a training objective and is not part of the model.
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

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        x1 = split_heads(emb, self.config.num_heads)
        h = torch.cat([self.ecn(x1).mean(dim=1), self.lcn(x1).mean(dim=1)], dim=1)
        return h, None
