"""FinalMLP (Mao et al., AAAI 2023): two MLP streams, feature selection, bilinear fusion."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.layers import MLP, BilinearFusion, FeatureGate


@dataclass
class FinalMLPConfig(ModelConfig):
    """Defaults: FuxiCTR's FinalMLP (gate MLP [64], one fusion head, ReLU, no batch norm) with
    both streams widened to BARS's [400, 400, 400]. ``fs1_context``/``fs2_context`` name the
    features conditioning each stream's gate (empty: a learned vector)."""

    mlp1_hidden_units: tuple[int, ...] = param((400, 400, 400), ge=1)
    mlp2_hidden_units: tuple[int, ...] = param((400, 400, 400), ge=1)
    activation: str = "relu"
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False
    use_feature_selection: bool = True
    fs_hidden_units: tuple[int, ...] = param((64,), ge=1)
    fs1_context: tuple[str, ...] = ()
    fs2_context: tuple[str, ...] = ()
    num_heads: int = param(1, ge=1)


class FinalMLP(CTRModel):
    """``o_k = MLP_k(gate_k ⊙ flatten(emb))``; ``h = [o_1 || o_2 || bilinear(o_1, o_2)]``.

    The head on ``h`` computes the paper's fusion (Eq. 6-7) up to a reparametrisation, see
    :class:`~mutualctr.models.layers.BilinearFusion`.
    """

    name = "finalmlp"
    config_class = FinalMLPConfig

    def build(self) -> int:
        c = self.config
        self.mlp1 = MLP(self.flat_dim, c.mlp1_hidden_units, c.activation, c.dropout, c.batch_norm)
        self.mlp2 = MLP(self.flat_dim, c.mlp2_hidden_units, c.activation, c.dropout, c.batch_norm)
        if c.use_feature_selection:
            dim = c.embedding_dim
            self.gate1 = FeatureGate(
                [self.field_index(n) for n in c.fs1_context], dim, self.flat_dim,
                c.fs_hidden_units,
            )
            self.gate2 = FeatureGate(
                [self.field_index(n) for n in c.fs2_context], dim, self.flat_dim,
                c.fs_hidden_units,
            )
        self.fusion = BilinearFusion(self.mlp1.out_dim, self.mlp2.out_dim, c.num_heads)
        return self.fusion.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        if self.config.use_feature_selection:
            x1, x2 = self.gate1(emb), self.gate2(emb)
        else:
            x1 = x2 = emb.flatten(1)
        return self.fusion(self.mlp1(x1), self.mlp2(x2)), None
