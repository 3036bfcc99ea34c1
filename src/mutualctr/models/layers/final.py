"""Factorized interaction layer and block of FINAL (Zhu et al., SIGIR 2023)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mutualctr.models.layers.mlp import MLP

ResidualType = Literal["concat", "sum"]


class FactorizedInteraction(nn.Module):
    """A linear layer that learns quadratic interactions: ``h = W x + b`` split in halves
    ``(h_2, h_1)``, output ``[h_2 || h_1 ⊙ h_2]`` (``concat``) or ``h_2 + h_1 ⊙ h_2`` (``sum``).

    The product of two linear maps of ``x`` is FINAL's factorized second-order term; stacking
    ``L`` layers gives interactions up to degree ``2^L``.
    """

    def __init__(self, in_dim: int, out_dim: int, residual: ResidualType = "concat") -> None:
        super().__init__()
        if residual == "concat" and out_dim % 2:
            raise ValueError(f"FINAL concat layers need an even width, got {out_dim}")
        self.residual = residual
        self.linear = nn.Linear(in_dim, out_dim if residual == "concat" else 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h2, h1 = self.linear(x).chunk(2, dim=-1)
        if self.residual == "concat":
            return torch.cat([h2, h1 * h2], dim=-1)
        return h2 + h1 * h2


class FinalBlock(MLP):
    """FINAL layers stacked like an MLP: ``layer -> [BatchNorm] -> activation -> [Dropout]``.

    The default activation is the identity: the multiplicative layers are the non-linearity.
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int], residual: ResidualType = "concat",
        activation: str = "identity", dropout: float = 0.0, batch_norm: bool = True,
    ) -> None:
        super().__init__(
            in_dim, hidden, activation=activation, dropout=dropout, batch_norm=batch_norm,
            layer=functools.partial(FactorizedInteraction, residual=residual),
        )


class FieldGate(nn.Module):
    """FINAL's optional feature gating: ``[v || v ⊙ g(v)]`` with a per-dimension linear map
    across fields, initialised to the identity gate (zero weights, unit bias)."""

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_fields, num_fields)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.ones_(self.linear.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        gates = self.linear(emb.transpose(1, 2)).transpose(1, 2)
        return torch.cat([emb, emb * gates], dim=1)
