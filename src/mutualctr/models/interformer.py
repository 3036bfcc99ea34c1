"""InterFormer (Zeng et al., 2024, Meta, "InterFormer: Towards Effective Heterogeneous
Interaction Learning for Click-Through Rate Prediction", arXiv:2411.09852).

Non-sequence tokens ``X`` (every field except the behaviour histories) and the behaviour
sequence ``S`` are learned in an interleaved way, each layer exchanging summaries in both
directions (App. A.1):

* Cross Arch (Sec. 4.4): ``X_sum = Gating(LCE(X))`` (``n_sum`` tokens) and
  ``S_sum = Gating([S_CLS || S_PMA || S_recent])``;
* Interaction Arch (Sec. 4.2, sequence -> non-sequence): ``X' = MLP(DHEN([X || S_sum]))``;
* Sequence Arch (Sec. 4.3, non-sequence -> sequence): ``S' = MHA(PFFN(X_sum, S))``, the
  ``n_sum`` tokens of the first ``X_sum`` prepended to ``S`` as CLS tokens before layer 1.

``h = MLP(flatten([X_sum || S_sum]))`` from the Cross Arch of the last layer's outputs.
Behaviour histories are the sequence features with ``share_with``; several (items and their
categories) are unified per position by MaskNet (Sec. 4.1.2), so they must share one length.
Positions are rotary-embedded (Sec. 4.3) by recency: the CLS tokens at 0, behaviour ``t`` of a
history of ``n`` at ``n - t`` (the newest at 1). Padded positions are masked keys of every
attention and never among the recent tokens; an empty history leaves the CLS tokens as the only
keys of the sequence attention.

Without behaviour histories (an all-categorical store) there is no sequence to read: the
Sequence Arch and the sequence summary are absent and the model is the Interaction Arch stack
over the fields with the non-sequence summary as ``h``'s input.

Readings where the paper is loose: the head reads the summaries of the last layer's outputs
(Algorithm 1 names the summaries of layer ``L``'s inputs, which would leave the last layer's
arches unused); the Interaction Arch's MLP is one linear layer from the DHEN layer's flattened
output to ``n`` tokens; the Sequence Arch is a Transformer block with the PFFN as its FFN
(residual and layer norm around both); ``Gating`` is ``Z ⊙ sigmoid(MLP(Z))``; PFFN is the
appendix's linear ``W_PFFN = X_sum W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.dhen import DHENLayerConfig
from mutualctr.models.embedding import Embedded
from mutualctr.models.layers.interformer import (
    InteractionArch,
    NonSequenceSummary,
    SequenceArch,
    SequenceSummary,
    SequenceUnifier,
)
from mutualctr.models.layers.tokens import behaviour_sequences


@dataclass
class InterFormerConfig(MLPModelConfig, DHENLayerConfig):
    """Defaults: the paper's App. B.2 (4 CLS tokens, 2 PMA tokens, 2 recent tokens; Swish
    activation; DHEN of DOT + DCN as the Interaction Arch) and rotary positions; 2 layers and
    2 attention heads (the paper searched 1-8 heads; its industrial model has 3 layers); the
    head MLP is the zoo's shared [400, 200, 100]; embedding 16. ``num_heads`` serves the
    sequence attention, PMA and DHEN's self-attention module. ``num_cls_tokens`` is also
    ``n_sum``, the size of the non-sequence summary."""

    activation: str = "silu"
    num_layers: int = param(2, ge=0)  # 0: no sequence/interaction layers
    num_cls_tokens: int = param(4, ge=1)
    num_pma_tokens: int = param(2, ge=0)
    num_recent_tokens: int = param(2, ge=0)
    rotary: bool = True


class InterFormer(CTRModel):
    """See the module docstring; :meth:`encode` gives the interleaved ``X`` and ``S``."""

    name = "interformer"
    config_class = InterFormerConfig
    needs_histories = True

    def build(self) -> int:
        c, fm = self.config, self.feature_map
        dim, layers = c.embedding_dim, c.num_layers
        self.behaviour = behaviour_sequences(fm)
        lengths = {fm.sequence[i].max_len for i in self.behaviour}
        if len(lengths) > 1:
            raise ValueError("InterFormer unifies its behaviour histories per position; "
                             f"their lengths differ: {sorted(lengths)}")
        if c.rotary and (dim // max(c.num_heads, 1)) % 2:
            raise ValueError(f"rotary positions need an even head size, got embedding_dim {dim} "
                             f"over {c.num_heads} heads")
        behaviour_fields = {len(fm.categorical) + i for i in self.behaviour}
        kept = [j for j in range(self.num_fields) if j not in behaviour_fields]
        self.register_buffer("non_sequence_fields", torch.tensor(kept), persistent=False)
        n, n_sum = len(kept), c.num_cls_tokens
        summary_tokens = 0
        if self.behaviour:
            summary_tokens = n_sum + c.num_pma_tokens + c.num_recent_tokens
            self.unify = SequenceUnifier(len(self.behaviour), dim)
            self.sequence_archs = nn.ModuleList(
                SequenceArch(n_sum, dim, c.num_heads) for _ in range(layers))
            self.sequence_summaries = nn.ModuleList(
                SequenceSummary(dim, n_sum, c.num_pma_tokens, c.num_recent_tokens, c.num_heads)
                for _ in range(layers + 1))
        self.non_sequence_summaries = nn.ModuleList(
            NonSequenceSummary(n, n_sum, dim) for _ in range(layers + 1 if self.behaviour else 1))
        in_tokens = n + summary_tokens
        self.interactions = nn.ModuleList(
            InteractionArch(c.make_dhen_layer(in_tokens, in_tokens, dim), n, dim)
            for _ in range(layers))
        self.mlp = c.make_mlp((n_sum + summary_tokens) * dim)
        return self.mlp.out_dim

    def _recency(self, mask: torch.Tensor) -> torch.Tensor:
        """Rotary positions ``[B, n_cls + T]``: 0 for the CLS tokens, ``n - t`` for behaviour
        ``t`` of ``n`` (padding clamped to 0; it is masked)."""
        present = mask.sum(1, keepdim=True)
        behaviours = (present - torch.arange(mask.shape[1], device=mask.device)).clamp(min=0)
        cls = torch.zeros_like(behaviours[:, :1]).expand(-1, self.config.num_cls_tokens)
        return torch.cat([cls, behaviours], dim=1)

    def encode(
        self, embedded: Embedded
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The last layer's non-sequence tokens ``X`` ``[B, n, D]``, sequence ``S``
        ``[B, n_cls + T, D]`` and behaviour mask ``[B, T]`` (``None`` without histories)."""
        x = embedded.fields.index_select(1, self.non_sequence_fields)
        if not self.behaviour:
            for interaction in self.interactions:
                x = interaction(x)
            return x, None, None
        s = self.unify([embedded.sequences[i] for i in self.behaviour])
        mask = torch.stack([embedded.masks[i] for i in self.behaviour]).any(0)
        positions = self._recency(mask) if self.config.rotary else None
        x_sum = self.non_sequence_summaries[0](x)
        s = torch.cat([x_sum, s], dim=1)
        present = torch.cat([torch.ones_like(x_sum[..., 0], dtype=torch.bool), mask], dim=1)
        for layer, (interaction, sequence_arch) in enumerate(
                zip(self.interactions, self.sequence_archs, strict=True)):
            if layer:
                x_sum = self.non_sequence_summaries[layer](x)
            s_sum = self.sequence_summaries[layer](s, mask)
            x, s = (interaction(torch.cat([x, s_sum], dim=1)),
                    sequence_arch(s, x_sum, present, positions))
        return x, s, mask

    def represent_embedded(self, batch: Batch, embedded: Embedded) -> tuple[torch.Tensor, None]:
        x, s, mask = self.encode(embedded)
        summary = self.non_sequence_summaries[-1](x)
        if s is not None:
            summary = torch.cat([summary, self.sequence_summaries[-1](s, mask)], dim=1)
        return self.mlp(summary.flatten(1)), None
