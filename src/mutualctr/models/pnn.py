"""Product-based neural network (Qu et al., ICDM 2016): IPNN, OPNN and PNN*."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import InnerProduct, sum_outer_product
from mutualctr.models.layers.pairs import num_pairs


@dataclass
class PNNConfig(MLPModelConfig):
    """Defaults: inner product (IPNN, as in the mutual-learning paper), MLP [400, 200, 100]."""

    product_type: Literal["inner", "outer", "both"] = "inner"


class PNN(CTRModel):
    """``h = MLP([flatten(emb) || products])``.

    The product layer's linear signals ``l_z`` (Eq. 3) and ``l_p`` are the first MLP layer
    applied to the concatenation of the embeddings and the products, as in FuxiCTR's IPNN.
    Inner products are all ``F(F-1)/2`` pairs ``<v_i, v_j>`` (Eq. 9 before its low-rank
    trick, which the paper needs for cost only); the outer product uses the paper's
    superposition ``f_S f_S^T`` (Eq. 14), ``D^2`` features.
    """

    name = "pnn"
    config_class = PNNConfig

    def build(self) -> int:
        kind = self.config.product_type
        width = self.flat_dim
        if kind in ("inner", "both"):
            self.inner = InnerProduct(self.num_fields)
            width += num_pairs(self.num_fields)
        if kind in ("outer", "both"):
            width += self.config.embedding_dim**2
        self.mlp = self.config.make_mlp(width)
        return self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        kind = self.config.product_type
        parts = [emb.flatten(1)]
        if kind in ("inner", "both"):
            parts.append(self.inner(emb))
        if kind in ("outer", "both"):
            parts.append(sum_outer_product(emb))
        return self.mlp(torch.cat(parts, dim=1)), None
