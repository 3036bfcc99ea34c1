"""Field embeddings as a set of tokens ``[B, N, D]``: a linear map across tokens, and which of a
feature map's sequences are behaviour histories whose positions can be tokens of their own."""

from __future__ import annotations

import torch
from torch import nn

from mutualctr.data.schema import FeatureMap


class TokenLinear(nn.Module):
    """``Y = W X``: ``[B, N_in, D]`` -> ``[B, N_out, D]`` with ``W`` in ``R^{N_out x N_in}``, the
    same for every embedding dimension, no bias.

    The one linear recombination of embeddings the Meta models share: Wukong's Linear
    Compress Block (Zhang et al. 2024, Sec. 3.5), DHEN's linear module and its shortcut
    projection (Zhang et al. 2022, Eqs. 2 and 6) and InterFormer's Linear Compressed Embedding
    (Zeng et al. 2024, App. A.2.1). Interaction orders are kept: each output token is a
    weighted sum of input tokens.
    """

    def __init__(self, in_tokens: int, out_tokens: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_tokens, out_tokens, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


def token_projection(in_tokens: int, out_tokens: int) -> nn.Module:
    """A :class:`TokenLinear` from ``in_tokens`` to ``out_tokens``, or the identity when they
    are equal: the shortcut of DHEN (Eq. 2) and Wukong (Sec. 3.3), and DHEN's ``W`` after
    modules that keep the token count (Eqs. 4, 7)."""
    return nn.Identity() if in_tokens == out_tokens else TokenLinear(in_tokens, out_tokens)


def behaviour_sequences(feature_map: FeatureMap) -> tuple[int, ...]:
    """Indices, in ``feature_map.sequence`` order (that of ``Embedded.sequences``), of the
    behaviour histories: the sequence features that share another feature's ids
    (``share_with``). A sequence without ``share_with`` (a multi-hot attribute such as a
    movie's genres) is an ordinary pooled field."""
    return tuple(i for i, f in enumerate(feature_map.sequence) if f.share_with)
