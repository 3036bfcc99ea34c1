"""Bilinear interaction of FiBiNET (Huang et al., 2019, Sec. 3.4)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mutualctr.models.layers.pairs import num_pairs, pair_indices

BilinearType = Literal["field_all", "field_each", "field_interaction"]


class BilinearInteraction(nn.Module):
    """``p_ij = (v_i W) ⊙ v_j`` for every field pair ``i < j``: ``[B, F, D]`` -> ``[B, P, D]``.

    ``field_all`` shares one ``W`` (Eq. 5), ``field_each`` has one ``W_i`` per left field
    (Eq. 6), ``field_interaction`` one ``W_ij`` per pair (Eq. 7). The first two multiply each
    field once and then gather pairs, so their cost is O(F D^2 + P D) rather than O(P D^2).
    """

    def __init__(self, num_fields: int, dim: int, kind: BilinearType = "field_interaction") -> None:
        super().__init__()
        self.kind = kind
        rows, cols = pair_indices(num_fields)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        count = {
            "field_all": 1, "field_each": num_fields, "field_interaction": num_pairs(num_fields)
        }
        if kind not in count:
            raise ValueError(f"bilinear kind must be one of {sorted(count)}, got {kind!r}")
        self.weight = nn.Parameter(torch.empty(count[kind], dim, dim))
        nn.init.xavier_normal_(self.weight)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        right = emb.index_select(1, self.cols)
        if self.kind == "field_all":
            left = (emb @ self.weight[0]).index_select(1, self.rows)
        elif self.kind == "field_each":
            left = torch.einsum("bfd,fde->bfe", emb, self.weight).index_select(1, self.rows)
        else:
            left = torch.einsum("bpd,pde->bpe", emb.index_select(1, self.rows), self.weight)
        return left * right
