"""DHEN's hierarchical ensemble layer (Zhang et al., 2022, "DHEN: A Deep and Hierarchical
Ensemble Network for Large-Scale Click-Through Rate Prediction", Sec. 3).

One layer runs ``k`` heterogeneous interaction modules on the same tokens ``X_n`` ``[B, N, D]``
and combines them (Eq. 1): ``Y = LayerNorm(Ensemble_i Interaction_i(X_n) + ShortCut(X_n))``,
``ShortCut`` the identity when ``Y`` has ``N`` tokens and a learned ``W_n X_n`` otherwise
(Eq. 2). Every module maps its ``N`` input tokens to ``N_m`` output tokens; a module whose
natural output is ``N`` tokens is followed by a token projection ``W`` when ``N_m != N``, as the
paper's Eqs. 4-7 do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mutualctr.models.layers.cross import CrossNetworkV2
from mutualctr.models.layers.mlp import MLP
from mutualctr.models.layers.multihead import MultiHeadAttention
from mutualctr.models.layers.product import InnerProduct
from mutualctr.models.layers.tokens import TokenLinear, token_projection

ModuleName = Literal["self_attention", "cross", "dot", "linear"]
Ensemble = Literal["sum", "concat"]


class SelfAttentionModule(nn.Module):
    """``u = W MHA(X_n, X_n)`` (Eq. 4). DHEN names a Transformer encoder layer; its residual and
    layer norm are the DHEN layer's own shortcut and norm, and its position-wise FFN is left
    out. ``mask`` [B, N] (True = present) hides absent tokens from the keys."""

    def __init__(self, in_tokens: int, out_tokens: int, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(dim, num_heads)
        self.project = token_projection(in_tokens, out_tokens)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.project(self.attention(x, x, mask))


class CrossModule(nn.Module):
    """DCN-V2's cross network over ``flatten(X_n)`` (Wang et al. 2021, Eq. 1) without its own
    skip: ``u = W (cross(x) - x)``. The paper drops DCN's skip connection because the DHEN layer
    has its shortcut (Sec. 3.3)."""

    def __init__(self, in_tokens: int, out_tokens: int, dim: int, num_layers: int,
                 low_rank: int) -> None:
        super().__init__()
        self.cross = CrossNetworkV2(in_tokens * dim, num_layers, low_rank)
        self.project = token_projection(in_tokens, out_tokens)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.flatten(1)
        return self.project((self.cross(flat) - flat).unflatten(1, x.shape[1:]))


class DotModule(nn.Module):
    """DHEN's DLRM-style module (AdvancedDLRM, Eq. 3), the factorization-machine family: the
    inner products ``<x_i, x_j>`` of all token pairs ``i < j``, an MLP, and ``W_m`` mapping the
    result to ``N_m`` tokens."""

    def __init__(self, in_tokens: int, out_tokens: int, dim: int,
                 hidden_units: Sequence[int]) -> None:
        super().__init__()
        self.products = InnerProduct(in_tokens)
        self.mlp = MLP(in_tokens * (in_tokens - 1) // 2, hidden_units)
        self.out = nn.Linear(self.mlp.out_dim, out_tokens * dim)
        self.shape = (out_tokens, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.mlp(self.products(x))).unflatten(1, self.shape)


class LinearModule(TokenLinear):
    """``u = W X_n`` (Eq. 6): the raw tokens, linearly recombined."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class DHENLayer(nn.Module):
    """One hierarchical ensemble layer, ``[B, N, D]`` -> ``[B, out_tokens, D]``.

    Args:
        in_tokens: ``N``.
        module_tokens: ``N_m``, each module's output tokens.
        dim: ``D``.
        modules: the interaction modules, by name (:data:`ModuleName`).
        ensemble: ``sum`` (``out_tokens = N_m``) or ``concat`` along the token axis
            (``out_tokens = k N_m``).
        num_heads, cross_layers, cross_low_rank, dot_hidden_units: the modules' settings.

    ``forward(x, mask)``: with ``mask`` [B, N] (True = present; ``sum`` with
    ``module_tokens == in_tokens`` only) absent tokens are set to zero on input and on output
    and are masked keys in self-attention, so they contribute nothing (zero inner products,
    cross terms and token weights) and stay absent through a stack of layers.
    """

    def __init__(
        self, in_tokens: int, module_tokens: int, dim: int, modules: Sequence[ModuleName],
        ensemble: Ensemble = "sum", num_heads: int = 2, cross_layers: int = 1,
        cross_low_rank: int = 0, dot_hidden_units: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not modules:
            raise ValueError("DHEN needs at least one interaction module")
        if ensemble not in ("sum", "concat"):
            raise ValueError(f"ensemble must be 'sum' or 'concat', got {ensemble!r}")
        builders = {
            "self_attention": lambda: SelfAttentionModule(in_tokens, module_tokens, dim,
                                                          num_heads),
            "cross": lambda: CrossModule(in_tokens, module_tokens, dim, cross_layers,
                                         cross_low_rank),
            "dot": lambda: DotModule(in_tokens, module_tokens, dim, dot_hidden_units),
            "linear": lambda: LinearModule(in_tokens, module_tokens),
        }
        unknown = [m for m in modules if m not in builders]
        if unknown:
            raise ValueError(f"unknown DHEN modules {unknown}; expected some of {list(builders)}")
        self.interactions = nn.ModuleList(builders[m]() for m in modules)
        self.ensemble = ensemble
        self.out_tokens = module_tokens * (len(modules) if ensemble == "concat" else 1)
        self.shortcut = token_projection(in_tokens, self.out_tokens)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        present = None if mask is None else mask.unsqueeze(-1).to(x.dtype)
        if present is not None:
            x = x * present
        outputs = [interaction(x, mask) for interaction in self.interactions]
        if self.ensemble == "sum":
            combined = torch.stack(outputs).sum(0)
        else:
            combined = torch.cat(outputs, dim=1)
        y = self.norm(combined + self.shortcut(x))
        return y if present is None else y * present
