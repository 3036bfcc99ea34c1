"""FINAL / FinalNet (Zhu et al., SIGIR 2023): factorized interaction blocks instead of MLPs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.layers import FieldGate, FinalBlock
from mutualctr.models.layers.final import ResidualType


@dataclass
class FINALConfig(ModelConfig):
    """Defaults: FuxiCTR's FinalNet (two blocks, batch norm, identity activation, ``concat``
    layers, no field gate) with blocks widened to [400, 400, 400]."""

    num_blocks: Literal[1, 2] = 2
    block1_hidden_units: tuple[int, ...] = (400, 400, 400)
    block2_hidden_units: tuple[int, ...] = (400, 400, 400)
    residual_type: ResidualType = "concat"
    activation: str = "identity"
    dropout: float = 0.0
    batch_norm: bool = True
    use_field_gate: bool = False


class FINAL(CTRModel):
    """``h = block_1(x)`` (1 block) or ``h = [block_1(x_g) || block_2(x)]`` (2 blocks).

    ``x = flatten(emb)``; ``x_g`` is ``x`` through the optional field gate. The paper averages
    the two blocks' logits; our head on the concatenation learns that combination. Its
    self-knowledge distillation between the blocks (a training loss) is not part of the model.
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

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        gated = self.field_gate(emb) if self.config.use_field_gate else emb
        h = self.block1(gated.flatten(1))
        if self.config.num_blocks == 2:
            h = torch.cat([h, self.block2(emb.flatten(1))], dim=1)
        return h, None
