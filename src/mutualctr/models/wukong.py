"""Wukong (Zhang et al., ICML 2024, Meta, "Wukong: Towards a Scaling Law for Large-Scale
Recommendation").

An Interaction Stack of ``num_layers`` Wukong layers (:class:`~mutualctr.models.layers.wukong.
WukongLayer`: a Factorization Machine Block and a Linear Compress Block, concatenated, residual,
layer norm) over the field embeddings, then the final MLP: ``h = MLP(flatten(X_l))``. Layer
``i`` holds interactions of orders 1 to ``2^i`` (Sec. 3.3). Wukong reads the field embeddings
only (behaviour histories mean-pooled like any sequence field), so it runs on any feature map.

Readings: the paper's dense-feature MLP is the shared embedding's per-field numeric vectors
(as FuxiCTR's WuKong); its per-feature multiple embeddings are not used (one embedding per
field).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers.wukong import WukongLayer


@dataclass
class WukongConfig(MLPModelConfig):
    """The paper's scaling hyperparameters (Sec. 3.8): ``num_layers`` (``l``), ``n_f`` and
    ``n_l`` (embeddings out of the FMB and the LCB), ``k`` (rank of the optimized FM) and the
    FMB's MLP (``fmb_hidden_units``); ``hidden_units`` is the final MLP.

    Defaults: the smallest configuration of the paper's scaling runs (Table 5: ``l = 2``,
    ``n_F = n_L = 8``, ``k = 24``) with the FMB's MLP shrunk from 3 x 2048 to 2 x 64 to train on
    CPU; the final MLP is the zoo's shared [400, 200, 100]; embedding 16.
    """

    num_layers: int = param(2, ge=1)
    n_f: int = param(8, ge=1)
    n_l: int = param(8, ge=0)  # 0: no LCB
    k: int = param(24, ge=1)
    fmb_hidden_units: tuple[int, ...] = param((64, 64), ge=1)


class Wukong(CTRModel):
    """``h = MLP(flatten(X_l))``, ``X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + X_i)``,
    ``X_0`` the ``F`` field embeddings; ``h`` has ``(n_F + n_L) D`` inputs after one layer."""

    name = "wukong"
    config_class = WukongConfig

    def build(self) -> int:
        c = self.config
        layers = []
        tokens = self.num_fields
        for _ in range(c.num_layers):
            layers.append(WukongLayer(tokens, c.n_f, c.n_l, c.embedding_dim, c.k,
                                      c.fmb_hidden_units, c.activation, c.dropout))
            tokens = c.n_f + c.n_l
        self.stack = nn.Sequential(*layers)
        self.mlp = c.make_mlp(tokens * c.embedding_dim)
        return self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.mlp(self.stack(emb).flatten(1)), None
