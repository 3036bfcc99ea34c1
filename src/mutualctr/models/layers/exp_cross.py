"""Linear and exponential cross networks of DCNv3 (Li et al., 2024)."""

from __future__ import annotations

import torch
from torch import nn


class SelfMaskCross(nn.Module):
    """One DCNv3 cross layer's interaction term ``[c || Mask(c)] + b`` with ``c = W x``.

    ``W`` maps ``d -> d/2``; ``Mask(c) = c ⊙ ReLU(LayerNorm(c))`` (the self-mask, Eq. 5) keeps
    about half of ``c``'s entries. The bias ``b`` (width ``d``) starts uniform in [0, 1) like
    the authors' code.
    """

    def __init__(self, dim: int, layer_norm: bool = True) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"DCNv3 cross layers need an even input width, got {dim}")
        self.linear = nn.Linear(dim, dim // 2, bias=False)
        self.norm = nn.LayerNorm(dim // 2) if layer_norm else nn.Identity()
        self.bias = nn.Parameter(torch.rand(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.linear(x)
        return torch.cat([c, c * torch.relu(self.norm(c))], dim=-1) + self.bias


class CrossNetworkV3(nn.Module):
    """DCNv3's cross networks over ``x_1 [..., d]`` (any leading dims, e.g. heads).

    ``exponential=False`` is the linear cross network (LCN, Eq. 4):
    ``x_{l+1} = x_1 ⊙ ([c_l || Mask(c_l)] + b_l) + x_l``, degree ``l + 1`` after ``l`` layers.
    ``exponential=True`` is the exponential cross network (ECN, Eq. 6):
    ``x_{2^l} = x_{2^{l-1}} ⊙ ([c_l || Mask(c_l)] + b_l) + x_{2^{l-1}}``, degree ``2^l``.
    """

    def __init__(
        self, dim: int, num_layers: int, exponential: bool, layer_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.exponential = exponential
        self.layers = nn.ModuleList(SelfMaskCross(dim, layer_norm) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x1: torch.Tensor) -> torch.Tensor:
        x = x1
        for layer in self.layers:
            x = self.dropout((x if self.exponential else x1) * layer(x) + x)
        return x


def split_heads(emb: torch.Tensor, num_heads: int) -> torch.Tensor:
    """DCNv3's multi-head feature embedding: ``[B, F, D]`` -> ``[B, heads, F * D / heads]``.

    Each field's vector is cut into ``num_heads`` chunks and head ``h`` sees chunk ``h`` of
    every field; the cross weights are shared by the heads.
    """
    batch, fields, dim = emb.shape
    if dim % num_heads:
        raise ValueError(f"embedding_dim {dim} is not divisible by num_heads {num_heads}")
    return emb.view(batch, fields, num_heads, dim // num_heads).transpose(1, 2).flatten(2)
