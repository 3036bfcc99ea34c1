"""xDeepFM (Lian et al., KDD 2018): linear + CIN + DNN."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import CIN, LinearTerm


@dataclass
class XDeepFMConfig(MLPModelConfig):
    """Defaults: CIN [16, 16, 16] (FuxiCTR), MLP [400, 400, 400] (BARS)."""

    hidden_units: tuple[int, ...] = (400, 400, 400)
    cin_layer_units: tuple[int, ...] = param((16, 16, 16), ge=1)


class XDeepFM(CTRModel):
    """``logit = linear(x) + w_c^T p^+ + w_d^T MLP(flatten(emb)) + b`` (Lian et al. Eq. 9).

    ``h = [p^+ || MLP(flatten(emb))]`` with ``p^+`` the sum-pooled CIN feature maps; the linear
    part is the residual logit.
    """

    name = "xdeepfm"
    config_class = XDeepFMConfig

    def build(self) -> int:
        c = self.config
        self.linear = LinearTerm(self.inputs, c.embedding_init_std)
        self.cin = CIN(self.num_fields, c.cin_layer_units)
        self.mlp = c.make_mlp(self.flat_dim)
        return self.cin.out_dim + self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.cin(emb), self.mlp(emb.flatten(1))], dim=1)
        return h, self.linear(batch)
