"""Wukong's interaction layer (Zhang et al., ICML 2024, "Wukong: Towards a Scaling Law for
Large-Scale Recommendation", Sec. 3.3-3.6).

Embeddings are whole units: a layer maps ``X_i`` ``[B, n_i, d]`` to
``X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + X_i)`` ``[B, n_F + n_L, d]``, the residual linearly
compressed to ``n_F + n_L`` embeddings when ``n_i`` differs (Sec. 3.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mutualctr.models.layers.mlp import MLP
from mutualctr.models.layers.tokens import TokenLinear, token_projection


class FactorizationMachineBlock(nn.Module):
    """``FMB(X) = reshape(MLP(LN(flatten(FM(X)))))`` (Sec. 3.4) with the optimized FM of
    Sec. 3.6: ``FM(X) = X X^T Y``, ``Y`` in ``R^{n x k}`` learned, computed as ``X (X^T Y)`` in
    ``O(n k d)``. The MLP's last layer is linear and gives ``n_F d`` values, reshaped to ``n_F``
    embeddings.

    ``Y`` is a static learned matrix (the paper's default optimized FM; its variant that makes
    ``Y`` depend on the input is not implemented), initialised Xavier-normal.
    """

    def __init__(self, in_tokens: int, out_tokens: int, dim: int, rank: int,
                 hidden_units: Sequence[int], activation: str = "relu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.projection = nn.Parameter(torch.empty(in_tokens, rank))
        self.norm = nn.LayerNorm(in_tokens * rank)
        self.mlp = MLP(in_tokens * rank, hidden_units, activation, dropout)
        self.out = nn.Linear(self.mlp.out_dim, out_tokens * dim)
        self.shape = (out_tokens, dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.xavier_normal_(self.projection)

    def interactions(self, x: torch.Tensor) -> torch.Tensor:
        """The optimized FM ``X X^T Y`` ``[B, n, k]``."""
        return x @ (x.transpose(1, 2) @ self.projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fm = self.norm(self.interactions(x).flatten(1))
        return self.out(self.mlp(fm)).unflatten(1, self.shape)


class WukongLayer(nn.Module):
    """One layer of the Interaction Stack: an FMB and an LCB (``LCB(X) = W_L X``, Sec. 3.5, a
    :class:`TokenLinear`) on the same input, concatenated, plus the (compressed) residual,
    layer-normalised over ``d``."""

    def __init__(self, in_tokens: int, n_f: int, n_l: int, dim: int, rank: int,
                 hidden_units: Sequence[int], activation: str = "relu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fmb = FactorizationMachineBlock(in_tokens, n_f, dim, rank, hidden_units,
                                             activation, dropout)
        self.lcb = TokenLinear(in_tokens, n_l)
        self.residual = token_projection(in_tokens, n_f + n_l)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.cat([self.fmb(x), self.lcb(x)], dim=1) + self.residual(x))
