"""The arches of one InterFormer layer (Zeng et al., 2024, Meta, "InterFormer: Towards Effective
Heterogeneous Interaction Learning for Click-Through Rate Prediction", Sec. 4).

Shapes: non-sequence tokens ``X`` ``[B, n, D]``; the sequence ``S`` ``[B, n_cls + T, D]``, its
first ``n_cls`` tokens the CLS tokens, then ``T`` behaviour positions, right-padded, ``mask``
``[B, T]`` True where a behaviour is present.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mutualctr.models.layers.dhen import DHENLayer
from mutualctr.models.layers.mlp import MLP
from mutualctr.models.layers.multihead import MultiHeadAttention
from mutualctr.models.layers.tokens import TokenLinear


class SelfGate(nn.Module):
    """``Gating(Z) = Z ⊙ sigmoid(MLP(Z))`` over ``[B, N, D]``, the MLP one linear layer over the
    flattened tokens, so each gate sees the whole summary (Sec. 4.4).

    Reading: the paper's formula reads ``sigma(Z ⊙ MLP(Z))``, which would squash the summary
    into (0, 1); we take the usual self-gate that scales ``Z`` by a learned sigmoid.
    """

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(tokens * dim, tokens * dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.sigmoid(self.linear(z.flatten(1))).unflatten(1, z.shape[1:])


class NonSequenceSummary(nn.Module):
    """Cross Arch, non-sequence side: ``X_sum = Gating(LCE(X))`` ``[B, n_sum, D]``; the
    compression is the paper's Linear Compressed Embedding (App. A.2.1), read as the "MLP from
    ``R^{d x n}`` to ``R^{d x n_sum}``" of Sec. 4.4."""

    def __init__(self, in_tokens: int, out_tokens: int, dim: int) -> None:
        super().__init__()
        self.compress = TokenLinear(in_tokens, out_tokens)
        self.gate = SelfGate(out_tokens, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.compress(x))


def recent_tokens(behaviours: torch.Tensor, mask: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` most recent behaviours ``[B, count, D]``, newest first, of right-padded
    ``behaviours`` ``[B, T, D]``; slots a short history cannot fill are zero."""
    present = mask.sum(1, keepdim=True)  # [B, 1]
    index = present - 1 - torch.arange(count, device=mask.device)  # [B, count]
    valid = (index >= 0).unsqueeze(-1).to(behaviours.dtype)
    index = index.clamp(min=0).unsqueeze(-1).expand(-1, -1, behaviours.shape[-1])
    return behaviours.gather(1, index) * valid


class SequenceSummary(nn.Module):
    """Cross Arch, sequence side (Sec. 4.4): ``S_sum = Gating([S_CLS || S_PMA || S_recent])``
    ``[B, n_cls + n_pma + K, D]``: the CLS tokens as the sequence arch left them, PMA (learned
    queries attending over the behaviours, Sec. 3.4.2) and the ``K`` most recent behaviours.
    An empty history gives PMA its output bias and zero recent tokens."""

    def __init__(self, dim: int, num_cls: int, num_pma: int, num_recent: int,
                 num_heads: int) -> None:
        super().__init__()
        self.num_cls, self.num_recent = num_cls, num_recent
        self.pma_queries = nn.Parameter(torch.empty(num_pma, dim))
        self.pma = MultiHeadAttention(dim, num_heads)
        self.gate = SelfGate(num_cls + num_pma + num_recent, dim)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.xavier_normal_(self.pma_queries)

    def forward(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cls, behaviours = s[:, : self.num_cls], s[:, self.num_cls :]
        queries = self.pma_queries.expand(s.shape[0], -1, -1)
        pma = self.pma(queries, behaviours, mask)
        recent = recent_tokens(behaviours, mask, self.num_recent)
        return self.gate(torch.cat([cls, pma, recent], dim=1))


class PersonalizedFFN(nn.Module):
    """``PFFN(X_sum, S) = W_PFFN S`` with ``W_PFFN = X_sum W`` in ``R^{d x d}`` (App. A.2.2,
    ``X_sum`` in ``R^{d x n_sum}``, ``W`` in ``R^{n_sum x d}``): every row gets its own linear
    map of the sequence tokens, made from its non-sequence summary."""

    def __init__(self, summary_tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(summary_tokens, dim))
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.xavier_normal_(self.weight)

    def forward(self, x_sum: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        personal = x_sum.transpose(1, 2) @ self.weight  # [B, d, d]
        return s @ personal.transpose(1, 2)


class SequenceArch(nn.Module):
    """``S^{l+1} = MHA(PFFN(X_sum, S^l))`` (Sec. 4.3) as a Transformer block whose FFN is the
    PFFN: ``P = LN(S + PFFN(X_sum, S))``, ``S^{l+1} = LN(P + MHA(P, P))``; keys are the CLS
    tokens and the present behaviours, rotated by ``positions`` when given."""

    def __init__(self, summary_tokens: int, dim: int, num_heads: int) -> None:
        super().__init__()
        self.pffn = PersonalizedFFN(summary_tokens, dim)
        self.pffn_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.attention_norm = nn.LayerNorm(dim)

    def forward(self, s: torch.Tensor, x_sum: torch.Tensor, present: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        p = self.pffn_norm(s + self.pffn(x_sum, s))
        rotation = None if positions is None else (positions, positions)
        return self.attention_norm(p + self.attention(p, p, present, rotation))


class InteractionArch(nn.Module):
    """``X^{l+1} = MLP(Interaction([X^l || S_sum^l]))`` (Sec. 4.2): one DHEN layer (the paper's
    benchmarked backbone) over the non-sequence tokens and the sequence summary, then one
    linear layer from its flattened output back to ``n`` tokens."""

    def __init__(self, interaction: DHENLayer, out_tokens: int, dim: int) -> None:
        super().__init__()
        self.interaction = interaction
        self.out = nn.Linear(interaction.out_tokens * dim, out_tokens * dim)
        self.shape = (out_tokens, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.interaction(x).flatten(1)).unflatten(1, self.shape)


class SequenceUnifier(nn.Module):
    """MaskNet over ``k`` behaviour sequences (Sec. 4.1.2):
    ``MLP_lce(S ⊙ MLP_mask(S))``, ``S`` the ``k`` sequences' embeddings concatenated per
    position ``[B, T, k D]``, ``MLP_mask`` two layers (ReLU between), ``MLP_lce`` one linear
    layer back to ``D``."""

    def __init__(self, num_sequences: int, dim: int) -> None:
        super().__init__()
        width = num_sequences * dim
        self.mask = nn.Sequential(MLP(width, (width,)), nn.Linear(width, width))
        self.compress = nn.Linear(width, dim)

    def forward(self, sequences: Sequence[torch.Tensor]) -> torch.Tensor:
        s = torch.cat(list(sequences), dim=-1)
        return self.compress(s * self.mask(s))
