"""Scaled dot-product multi-head attention with a key mask (Vaswani et al. 2017), optionally with
rotary position embeddings (Su et al. 2024), for attention over behaviour sequences.

AutoInt's :class:`~mutualctr.models.layers.attention.FieldSelfAttention` attends over a fixed
set of fields; here queries and keys may differ (learned PMA queries over a sequence) and keys
may be padding, so the softmax is masked.
"""

from __future__ import annotations

import torch
from torch import nn

ROTARY_BASE = 10000.0


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``mask`` (True = attend), broadcast against
    ``scores``. A row with nothing to attend to (an empty history) gets all-zero weights rather
    than the NaN of ``softmax`` over ``-inf`` only.

    Masked scores are set to the dtype's lowest value, so they get exactly zero weight whenever
    one key is present; the product with the mask zeroes the uniform weights of empty rows.
    """
    lowest = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~mask, lowest), dim=-1)
    return weights * mask.to(weights.dtype)


def rotate(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (RoFormer, Su et al. 2024, Eq. 34, the rotate-half layout):
    ``x`` ``[B, heads, T, d]`` (``d`` even) rotated by ``positions`` ``[B, T]``, so the inner
    product of a rotated query and key depends on their positions' difference only."""
    half = x.shape[-1] // 2
    frequencies = ROTARY_BASE ** (-torch.arange(half, device=x.device, dtype=x.dtype) / half)
    angles = positions.to(x.dtype)[:, None, :, None] * frequencies  # [B, 1, T, half]
    cos, sin = angles.cos(), angles.sin()
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class MultiHeadAttention(nn.Module):
    """``MHA(Q, K, V) = [head_1 || ... || head_h] W^O`` with ``head_i = softmax(Q W_i^Q
    (K W_i^K)^T / sqrt(d_k)) V W_i^V`` (Vaswani et al. 2017), ``d_k = dim / heads``.

    ``forward(queries [B, Q, D], keys [B, K, D], key_mask [B, K] or None)`` -> ``[B, Q, D]``;
    values are the keys. With ``positions`` (``(query_positions [B, Q], key_positions [B, K])``)
    queries and keys are rotated (:func:`rotate`) after projection.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"embedding_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # [B, heads, T, d_k]

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None = None,
        positions: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        q = self._heads(self.query(queries))
        k, v = (self._heads(t) for t in self.key_value(keys).chunk(2, dim=-1))
        if positions is not None:
            q, k = rotate(q, positions[0]), rotate(k, positions[1])
        scores = (q @ k.transpose(-1, -2)) * self.scale  # [B, heads, Q, K]
        if key_mask is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            weights = masked_softmax(scores, key_mask[:, None, None, :])
        return self.out((weights @ v).transpose(1, 2).flatten(2))
