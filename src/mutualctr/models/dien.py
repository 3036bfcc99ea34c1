"""DIEN: Deep Interest Evolution Network (Zhou et al., AAAI 2019)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig, ModelOutput
from mutualctr.models.behaviour import BehaviourPairs
from mutualctr.models.embedding import Embedded, NumericInit
from mutualctr.models.layers.sequence import (
    AttentionalGRU,
    BilinearAttention,
    ScoringMLP,
    activation_mlp,
)


@dataclass
class DIENConfig(MLPModelConfig):
    """Defaults: FuxiCTR's DIEN (model_zoo/DIEN): MLP [200, 80] (the paper's) with ReLU and
    batch norm, AUGRU, bilinear attention with softmax, auxiliary network [100, 50] with ReLU.
    ``aux_loss_alpha`` 1: the authors' code adds the auxiliary loss with weight 1 (FuxiCTR's
    default 0 switches it off); 0 here switches it off too and builds no auxiliary network.
    Numeric fields start as FuxiCTR's (``numeric_init`` ``xavier``): from the categorical rows'
    1e-4 our DIEN trailed FuxiCTR's by 0.007 test AUC on a store with numeric fields, level
    with it from this start (docs/benchmarks.md, "Sequence models")."""

    numeric_init: NumericInit = "xavier"
    hidden_units: tuple[int, ...] = (200, 80)
    batch_norm: bool = True
    attention_softmax: bool = True
    aux_loss_alpha: float = param(1.0, ge=0.0)  # 0 = no auxiliary loss
    aux_hidden_units: tuple[int, ...] = param((100, 50), ge=1)
    aux_activation: str = "relu"


class NextBehaviourLoss(nn.Module):
    """DIEN's auxiliary loss (the interest extractor layer's ``L_aux``): the interest ``h_t``
    should tell the next behaviour ``e[t+1]`` from a negative one ``e^[t+1]``,
    ``-log s(h_t, e[t+1]) - log(1 - s(h_t, e^[t+1]))`` with ``s`` an MLP over the concatenation
    and a sigmoid (the authors' auxiliary network), averaged over the pairs where both
    behaviours are real.

    Negatives: the paper draws ``e^`` from the item set; FuxiCTR reads it from an extra
    negative-history field of the data set. Our stores have none, so the negative at position
    ``t+1`` is the previous row's behaviour at ``t+1`` in the batch (the first row's: the last
    row's): the training loader shuffles rows, so it is another user's behaviour, drawn from the
    behaviour distribution rather than uniformly from the items, at no cost and without random
    state (identical under ``vmap``). Rows in store order (no shuffle) would pair neighbours.

    Only the real pairs are scored: they are gathered by the mask's indices, a number that
    depends on the batch (about half of the ``B (L - 1)`` slots on the synthetic sequence data)
    but not on the parameters, so ``vmap`` over stacked copies, which share the batch, still
    applies; on a GPU the count costs one synchronisation per step.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], activation: str, dropout: float
                 ) -> None:
        super().__init__()
        self.mlp = ScoringMLP(2 * dim, hidden, activation, dropout)
        self.dim = dim

    def forward(self, interests: torch.Tensor, behaviours: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """The loss (a scalar) from the extracted interests and the behaviours ``[B, L, d]``
        with their mask ``[B, L]``. The first layer's interest part is computed once for the
        positive and the negative (:class:`ScoringMLP`)."""
        previous_row = mask.roll(1, dims=0)
        rows, steps = (mask[:, 1:] & previous_row[:, 1:]).nonzero(as_tuple=True)
        w_interest, w_behaviour = self.mlp.blocks(self.dim, self.dim)
        before = F.linear(interests[rows, steps], w_interest, self.mlp.first.bias)
        positive = self.mlp.score(before + F.linear(behaviours[rows, steps + 1], w_behaviour))
        negative = self.mlp.score(
            before + F.linear(behaviours[(rows - 1) % mask.shape[0], steps + 1], w_behaviour)
        )
        terms = F.softplus(-positive) + F.softplus(negative)  # BCE(1, .) + BCE(0, .)
        return terms.sum() / max(terms.numel(), 1)


class DIEN(CTRModel):
    """``h = MLP([h'_T, fields other than the histories])``: the target-history pairs
    (:class:`~mutualctr.models.behaviour.BehaviourPairs`, one ``P * D`` vector per position)
    go through the interest extractor GRU, the bilinear attention of each interest to the
    target, and the AUGRU whose last state ``h'_T`` is the evolved interest (zeros for an empty
    history, as FuxiCTR). In training, :class:`NextBehaviourLoss` times ``aux_loss_alpha`` is
    returned as ``ModelOutput.extra_loss`` for the objective to add.

    Without a history paired with a target the model is the MLP over all field embeddings,
    sequences mean-pooled, with no GRU, attention or auxiliary parameters. Not implemented:
    FuxiCTR's optional sum pooling of the history beside ``h'_T`` (off by default there) and
    the AIGRU/AGRU variants.
    """

    name = "dien"
    config_class = DIENConfig
    needs_histories = True

    def build(self) -> int:
        c = self.config
        self.pairs = BehaviourPairs.of(self.feature_map, self.field_index)
        self.extractor = self.attention = self.evolution = self.next_behaviour = None
        if self.pairs:
            width = len(self.pairs) * c.embedding_dim
            self.extractor = AttentionalGRU(width, width, uniform_init=True)
            self.attention = BilinearAttention(width, c.attention_softmax)
            self.evolution = AttentionalGRU(width, width)
            if c.aux_loss_alpha > 0:
                self.next_behaviour = NextBehaviourLoss(width, c.aux_hidden_units,
                                                        c.aux_activation, c.dropout)
        self.mlp = activation_mlp(self.flat_dim, c.hidden_units, c.activation, c.dropout,
                                  c.batch_norm)
        return self.mlp.out_dim

    def represent_embedded(self, batch: Batch, embedded: Embedded
                           ) -> tuple[torch.Tensor, None]:
        return self._represent(embedded, with_aux_loss=False)[0], None

    def forward_embedded(self, batch: Batch, embedded: Embedded) -> ModelOutput:
        """The base model's output plus, in training, the weighted auxiliary loss."""
        h, extra = self._represent(embedded, with_aux_loss=self.training)
        return ModelOutput(logit=self.head(h).squeeze(-1), h=h, extra_loss=extra)

    def _represent(self, embedded: Embedded, with_aux_loss: bool
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        fields = embedded.fields
        if self.extractor is None:
            return self.mlp(fields.flatten(1)), None
        keys, mask = self.pairs.keys(embedded)
        interests = self.extractor(keys, mask=mask)
        weights = self.attention(self.pairs.query(fields), interests, mask)
        evolved = self.evolution.final_state(interests, weights, mask)
        h = self.mlp(torch.cat([evolved, self.pairs.others(fields).flatten(1)], dim=1))
        if not with_aux_loss or self.next_behaviour is None:
            return h, None
        return h, self.config.aux_loss_alpha * self.next_behaviour(interests, keys, mask)
