"""DIN: Deep Interest Network (Zhou et al., KDD 2018)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.behaviour import BehaviourPairs
from mutualctr.models.embedding import Embedded
from mutualctr.models.layers.sequence import TargetAttention, activation_mlp


@dataclass
class DINConfig(MLPModelConfig):
    """Defaults: FuxiCTR's DIN (model_zoo/DIN): MLP [512, 128, 64] with ReLU, an attention MLP
    [64] with Dice, weights not normalised (the paper's choice). ``activation``/
    ``attention_activation`` take ``"dice"`` or any MLP activation (``"prelu"``: the paper's
    other option)."""

    hidden_units: tuple[int, ...] = (512, 128, 64)
    attention_units: tuple[int, ...] = param((64,), ge=1)
    attention_activation: str = "dice"
    attention_dropout: float = param(0.0, ge=0.0, lt=1.0)
    attention_softmax: bool = False


class DIN(CTRModel):
    """``h = MLP([fields other than the histories, sum_l w_l k_l])``: the target-history pairs
    (:class:`~mutualctr.models.behaviour.BehaviourPairs`) are read by one local activation unit
    whose output takes the place of the histories' pooled vectors (the paper's Fig. 2).

    Without a history paired with a target (no sequence field, or only unpaired ones such as
    genres) there is nothing to attend to: the model is the MLP over all field embeddings,
    sequences mean-pooled, and has no attention parameters. Mini-batch aware regularisation
    (the paper's Sec. 5.1) is not implemented: the trainer's L2 applies to the whole table.
    """

    name = "din"
    config_class = DINConfig
    needs_histories = True

    def build(self) -> int:
        c = self.config
        self.pairs = BehaviourPairs.of(self.feature_map, self.field_index)
        self.attention = None
        if self.pairs:
            self.attention = TargetAttention(
                len(self.pairs) * c.embedding_dim, c.attention_units, c.attention_activation,
                c.attention_dropout, c.attention_softmax,
            )
        self.mlp = activation_mlp(self.flat_dim, c.hidden_units, c.activation, c.dropout,
                                  c.batch_norm)
        return self.mlp.out_dim

    def represent_embedded(self, batch: Batch, embedded: Embedded
                           ) -> tuple[torch.Tensor, None]:
        fields = embedded.fields
        if self.attention is None:
            return self.mlp(fields.flatten(1)), None
        keys, mask = self.pairs.keys(embedded)
        interest = self.attention(self.pairs.query(fields), keys, mask)
        return self.mlp(torch.cat([self.pairs.others(fields).flatten(1), interest], 1)), None
