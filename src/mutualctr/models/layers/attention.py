"""Multi-head self-attention over fields (AutoInt, Song et al., 2019, Sec. 4.3)."""

from __future__ import annotations

import torch
from torch import nn


class FieldSelfAttention(nn.Module):
    """One interacting layer: ``[B, F, d_in]`` -> ``[B, F, heads * head_dim]``.

    Per head ``h``: ``alpha = softmax_k(<W_Q e_m, W_K e_k>)`` (Eq. 5; AutoInt's paper uses the
    plain inner product, ``scale=True`` divides by ``sqrt(head_dim)`` as in Transformers),
    ``e~_m = sum_k alpha_mk W_V e_k`` (Eq. 6); heads are concatenated (Eq. 7) and the output is
    ``ReLU(e~ + W_Res e)`` (Eq. 8) with ``residual=True``, otherwise ``ReLU(e~)``.
    """

    def __init__(
        self, in_dim: int, head_dim: int, num_heads: int, residual: bool = True,
        scale: bool = False, layer_norm: bool = False,
    ) -> None:
        super().__init__()
        out_dim = head_dim * num_heads
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(in_dim, 3 * out_dim, bias=False)
        self.residual = nn.Linear(in_dim, out_dim, bias=False) if residual else None
        self.temperature = head_dim**0.5 if scale else 1.0
        self.norm = nn.LayerNorm(out_dim) if layer_norm else None
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, fields, _ = x.shape
        qkv = self.qkv(x).view(batch, fields, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, F, head_dim]
        scores = torch.softmax(q @ k.transpose(-1, -2) / self.temperature, dim=-1)
        out = (scores @ v).transpose(1, 2).reshape(batch, fields, self.out_dim)
        if self.residual is not None:
            out = out + self.residual(x)
        out = torch.relu(out)
        return self.norm(out) if self.norm is not None else out
