"""FinalMLP's stream-specific feature selection and multi-head bilinear fusion
(Mao et al., AAAI 2023, Sec. 3.2-3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mutualctr.models.layers.mlp import MLP


class FeatureGate(nn.Module):
    """Gate ``2 * sigmoid(MLP(context))`` over the flattened embeddings ``[B, F*D]`` (Eq. 3).

    ``context_fields`` are indices of the fields whose embeddings condition the gate; none
    means a learned context vector shared by all rows (the paper's default for a stream
    without chosen context features). The final layer starts at zero, so every gate starts
    at exactly 1.
    """

    def __init__(
        self, context_fields: Sequence[int], dim: int, flat_dim: int, hidden: Sequence[int]
    ) -> None:
        super().__init__()
        self.register_buffer(
            "context_fields", torch.tensor(list(context_fields), dtype=torch.long),
            persistent=False,
        )
        self.shared_context = (
            nn.Parameter(torch.zeros(1, dim)) if not context_fields else None
        )
        self.mlp = MLP(dim * max(1, len(context_fields)), hidden)
        self.out = nn.Linear(self.mlp.out_dim, flat_dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        if self.shared_context is None:
            context = emb.index_select(1, self.context_fields).flatten(1)
        else:
            context = self.shared_context.expand(emb.shape[0], -1)
        gate = 2.0 * torch.sigmoid(self.out(self.mlp(context)))
        return emb.flatten(1) * gate


class BilinearFusion(nn.Module):
    """Multi-head bilinear fusion features of two streams ``o_1 [B, d_1]``, ``o_2 [B, d_2]``.

    FinalMLP's fusion (Eq. 6-7) is ``b + w_1^T o_1 + w_2^T o_2 + sum_h o_1h^T W_h o_2h``.
    This layer returns ``[o_1 || o_2 || (o_1h W_h) ⊙ o_2h over heads]`` (``d_1 + 2 d_2``): a
    linear read-out with unit weights on the last block is exactly the paper's fusion, so the
    model's linear head learns ``b, w_1, w_2`` and a (redundant) per-dimension scale of ``W``.
    """

    def __init__(self, dim1: int, dim2: int, num_heads: int = 1) -> None:
        super().__init__()
        if dim1 % num_heads or dim2 % num_heads:
            raise ValueError(
                f"stream widths {dim1} and {dim2} must be divisible by num_heads={num_heads}"
            )
        self.num_heads = num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, dim1 // num_heads, dim2 // num_heads))
        nn.init.xavier_normal_(self.weight)
        self.out_dim = dim1 + 2 * dim2

    def forward(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        batch = o1.shape[0]
        left = o1.view(batch, self.num_heads, -1)
        right = o2.view(batch, self.num_heads, -1)
        bilinear = torch.einsum("bhi,hij->bhj", left, self.weight) * right
        return torch.cat([o1, o2, bilinear.flatten(1)], dim=1)
