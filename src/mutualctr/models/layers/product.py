"""Product layers of PNN (Qu et al., 2016): inner and outer products of field embeddings."""

from __future__ import annotations

import torch
from torch import nn

from mutualctr.models.layers.pairs import pair_indices


class InnerProduct(nn.Module):
    """All pairwise inner products ``<v_i, v_j>`` for ``i < j``: ``[B, F, D]`` -> ``[B, P]``.

    One batched matrix product gives the full Gram matrix ``[B, F, F]``; the strict upper
    triangle is then read with one ``index_select`` on the flattened matrix, so there is no
    ``[B, P, D]`` intermediate and no loop over pairs.
    """

    def __init__(self, num_fields: int) -> None:
        super().__init__()
        rows, cols = pair_indices(num_fields)
        self.register_buffer("flat_index", rows * num_fields + cols, persistent=False)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(emb, emb.transpose(1, 2))  # [B, F, F]
        return gram.flatten(1).index_select(1, self.flat_index)


def sum_outer_product(emb: torch.Tensor) -> torch.Tensor:
    """OPNN's superposed outer product ``f_S f_S^T`` with ``f_S = sum_i v_i`` (Qu et al. Eq. 14).

    ``[B, F, D]`` -> ``[B, D * D]``; the following linear layer plays the role of ``W_p``.
    """
    total = emb.sum(dim=1)
    return (total.unsqueeze(2) * total.unsqueeze(1)).flatten(1)
