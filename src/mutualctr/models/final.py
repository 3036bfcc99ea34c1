"""FINAL / FinalNet (Zhu et al., SIGIR 2023): factorized interaction blocks instead of MLPs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import AuxiliaryLoss, CTRModel, ModelConfig
from mutualctr.models.layers import FieldGate, FinalBlock
from mutualctr.models.layers.final import ResidualType


@dataclass
class FINALConfig(ModelConfig):
    """Defaults: FuxiCTR's FinalNet (two blocks, batch norm, identity activation, ``concat``
    layers, no field gate) with blocks widened to [400, 400, 400]. ``self_distillation``: the
    paper's training loss for two blocks (:mod:`mutualctr.training.objectives.auxiliary`)."""

    num_blocks: Literal[1, 2] = 2
    block1_hidden_units: tuple[int, ...] = param((400, 400, 400), ge=1)
    block2_hidden_units: tuple[int, ...] = param((400, 400, 400), ge=1)
    residual_type: ResidualType = "concat"
    activation: str = "identity"
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = True
    use_field_gate: bool = False
    self_distillation: bool = True


class FINAL(CTRModel):
    """``h = block_1(x)`` (1 block) or ``h = [block_1(x_g) || block_2(x)]`` (2 blocks).

    ``x = flatten(emb)``; ``x_g`` is ``x`` through the optional field gate. The paper averages
    the two blocks' logits; the head on the concatenation is that average, each block's part
    of it being the block's own logit (:func:`~mutualctr.models.base.split_head_logits`), which
    the self-knowledge distillation between blocks trains.
    """

    name = "final"
    config_class = FINALConfig

    def build(self) -> int:
        c = self.config
        gated_dim = self.flat_dim
        if c.use_field_gate:
            self.field_gate = FieldGate(self.num_fields)
            gated_dim *= 2
        self.block1 = FinalBlock(
            gated_dim, c.block1_hidden_units, c.residual_type, c.activation, c.dropout,
            c.batch_norm,
        )
        width = self.block1.out_dim
        if c.num_blocks == 2:
            self.block2 = FinalBlock(
                self.flat_dim, c.block2_hidden_units, c.residual_type, c.activation, c.dropout,
                c.batch_norm,
            )
            width += self.block2.out_dim
        return width

    def auxiliary(self) -> tuple[AuxiliaryLoss, tuple[int, ...]]:
        if self.config.num_blocks == 2 and self.config.self_distillation:
            return "self_distillation", (self.block1.out_dim, self.block2.out_dim)
        return "none", ()

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        gated = self.field_gate(emb) if self.config.use_field_gate else emb
        h = self.block1(gated.flatten(1))
        if self.config.num_blocks == 2:
            h = torch.cat([h, self.block2(emb.flatten(1))], dim=1)
        return h, None
