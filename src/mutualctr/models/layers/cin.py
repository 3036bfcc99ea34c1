"""Compressed interaction network of xDeepFM (Lian et al., 2018, Sec. 3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CIN(nn.Module):
    """``X^k_h = sum_{i,j} W^{k,h}_{ij} (X^{k-1}_i ⊙ X^0_j)`` (Eq. 6), sum-pooled per layer (Eq. 8).

    ``[B, F, D]`` -> ``[B, sum(layer_units)]``. Each layer forms the ``[B, H_{k-1} F, D]`` outer
    product of the previous layer's feature maps with the input fields and compresses it with one
    matrix (the paper's 1x1 convolution, with a bias). No activation, as in the reference code.
    """

    def __init__(self, num_fields: int, layer_units: Sequence[int]) -> None:
        super().__init__()
        previous = [num_fields, *layer_units[:-1]]
        self.layers = nn.ModuleList(
            nn.Linear(prev * num_fields, units)
            for prev, units in zip(previous, layer_units, strict=True)
        )
        self.out_dim = sum(layer_units)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        batch, _, dim = emb.shape
        x = emb
        pooled = []
        for layer in self.layers:
            z = (x.unsqueeze(2) * emb.unsqueeze(1)).reshape(batch, -1, dim)  # [B, H*F, D]
            x = layer(z.transpose(1, 2)).transpose(1, 2)  # [B, H_next, D]
            pooled.append(x.sum(dim=2))
        return torch.cat(pooled, dim=1)
