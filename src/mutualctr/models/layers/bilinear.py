"""Bilinear interaction of FiBiNET (Huang et al., 2019, Sec. 3.4)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mutualctr.models.layers.pairs import num_pairs, pair_indices

BilinearType = Literal["field_all", "field_each", "field_interaction"]


class BilinearInteraction(nn.Module):
    """``p_ij = (v_i W) ⊙ v_j`` for every field pair ``i < j``.

    ``field_all`` shares one ``W`` (Eq. 5), ``field_each`` has one ``W_i`` per left field
    (Eq. 6), ``field_interaction`` one ``W_ij`` per pair (Eq. 7). The first two multiply each
    field once and then gather pairs, so their cost is O(F D^2 + P D) rather than O(P D^2).

    The input may hold ``groups`` sets of ``F`` fields side by side, ``[B, groups * F, D]``
    (FiBiNET's embeddings and their SENET re-weighting): pairs are formed within each group
    and the output ``[B, groups * P, D]`` comes out in one contiguous tensor, so the model
    needs no concatenation of the (large) interaction outputs. Each group has its own
    weights unless ``shared``.
    """

    def __init__(
        self, num_fields: int, dim: int, kind: BilinearType = "field_interaction",
        groups: int = 1, shared: bool = False,
    ) -> None:
        super().__init__()
        count = {
            "field_all": 1, "field_each": num_fields, "field_interaction": num_pairs(num_fields)
        }
        if kind not in count:
            raise ValueError(f"bilinear kind must be one of {sorted(count)}, got {kind!r}")
        self.kind, self.groups, self.num_fields = kind, groups, num_fields
        rows, cols = pair_indices(num_fields)
        shift = torch.arange(groups).repeat_interleave(len(rows)) * num_fields
        self.register_buffer("rows", rows.repeat(groups) + shift, persistent=False)
        self.register_buffer("cols", cols.repeat(groups) + shift, persistent=False)
        self.weight = nn.Parameter(torch.empty(1 if shared else groups, count[kind], dim, dim))
        nn.init.xavier_normal_(self.weight.view(-1, dim, dim))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        batch, _, dim = emb.shape
        weight = self.weight.expand(self.groups, -1, -1, -1)
        right = emb.index_select(1, self.cols)
        if self.kind == "field_all":
            grouped = emb.view(batch, self.groups, self.num_fields, dim)
            left = torch.einsum("bgfd,gde->bgfe", grouped, weight[:, 0]).flatten(1, 2)
            left = left.index_select(1, self.rows)
        elif self.kind == "field_each":
            left = torch.einsum("bfd,fde->bfe", emb, weight.flatten(0, 1))
            left = left.index_select(1, self.rows)
        else:
            left = torch.einsum(
                "bpd,pde->bpe", emb.index_select(1, self.rows), weight.flatten(0, 1)
            )
        return left * right
