"""DHEN (Zhang et al., 2022, Meta, "DHEN: A Deep and Hierarchical Ensemble Network for
Large-Scale Click-Through Rate Prediction").

``num_layers`` hierarchical ensemble layers (:class:`~mutualctr.models.layers.dhen.DHENLayer`,
Eq. 1) over the field embeddings as tokens, then an MLP over the flattened last layer (the
paper's prediction head): ``h = MLP(flatten(X_L))``.

Sequences. By default the tokens are the ``F`` field embeddings, behaviour histories
mean-pooled like any sequence field, so DHEN runs on any feature map. With
``sequence_tokens: true`` the ``L`` slots of every behaviour history (a sequence feature with
``share_with``) are appended as tokens: a padded slot is a zero token before and after every
layer and a masked key in self-attention, so it adds nothing to any module (zero inner
products, zero cross terms, zero weight in token mixing) and its id never matters; an empty
history leaves the ``F`` field tokens only. A slot is a position counted from the oldest
behaviour (histories are right-padded), which the position-specific weights of the linear,
dot and cross modules see. The slots keep their identity through the layers only if every
layer keeps the token count, so this needs ``ensemble: sum``. A feature map without behaviour
histories gives the field tokens alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mutualctr.config import Validated, param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.embedding import Embedded
from mutualctr.models.layers.dhen import DHENLayer, Ensemble, ModuleName
from mutualctr.models.layers.tokens import behaviour_sequences


@dataclass
class DHENLayerConfig(Validated):
    """One DHEN layer's settings, shared with InterFormer's Interaction Arch.

    Defaults: the DOT-product and DCN modules of the DHEN that InterFormer (Zeng et al. 2024,
    App. B.2) benchmarks and builds on, summed; ``self_attention`` (``num_heads``) and
    ``linear`` are the paper's other modules. ``cross_layers`` cross layers per DCN module
    (``cross_low_rank`` > 0 for low-rank ones); ``dot_hidden_units`` the MLP between the inner
    products and the projection ``W_m`` (empty: ``W_m`` alone).
    """

    interaction_modules: tuple[ModuleName, ...] = ("dot", "cross")
    ensemble: Ensemble = "sum"
    num_heads: int = param(2, ge=1)
    cross_layers: int = param(1, ge=1)
    cross_low_rank: int = param(0, ge=0)  # 0 = full rank
    dot_hidden_units: tuple[int, ...] = param((), ge=1)  # every width >= 1

    def make_dhen_layer(self, in_tokens: int, module_tokens: int, dim: int) -> DHENLayer:
        return DHENLayer(in_tokens, module_tokens, dim, self.interaction_modules, self.ensemble,
                         self.num_heads, self.cross_layers, self.cross_low_rank,
                         self.dot_hidden_units)


@dataclass
class DHENConfig(MLPModelConfig, DHENLayerConfig):
    """Defaults: 2 layers (InterFormer's App. B.2 searched DHEN over 1-3) of DOT + DCN summed;
    the head MLP is the zoo's shared [400, 200, 100]; embedding 16."""

    num_layers: int = param(2, ge=1)
    sequence_tokens: bool = False


class DHEN(CTRModel):
    """``h = MLP(flatten(X_L))``, ``X_{n+1} = LayerNorm(Ensemble_i Interaction_i(X_n) +
    ShortCut(X_n))``, ``X_0`` the field tokens (plus behaviour slots with ``sequence_tokens``).

    With ``concat`` the first layer maps ``F`` tokens to ``k F`` (its shortcut is ``W_0``) and
    every later layer's modules map ``k F`` tokens back to ``F`` each, so the width stays
    ``k F`` instead of growing ``k``-fold per layer.
    """

    name = "dhen"
    config_class = DHENConfig

    def build(self) -> int:
        c = self.config
        self.behaviour = behaviour_sequences(self.feature_map) if c.sequence_tokens else ()
        if self.behaviour and c.ensemble != "sum":
            raise ValueError("sequence_tokens needs ensemble 'sum': concatenated module outputs "
                             "no longer hold one token per behaviour slot")
        tokens = self.num_fields + sum(self.feature_map.sequence[i].max_len
                                       for i in self.behaviour)
        layers = []
        in_tokens = tokens
        for _ in range(c.num_layers):
            layers.append(c.make_dhen_layer(in_tokens, tokens, c.embedding_dim))
            in_tokens = layers[-1].out_tokens
        self.layers = nn.ModuleList(layers)
        self.mlp = c.make_mlp(in_tokens * c.embedding_dim)
        return self.mlp.out_dim

    def represent_embedded(self, batch: Batch, embedded: Embedded) -> tuple[torch.Tensor, None]:
        x, mask = embedded.fields, None
        if self.behaviour:
            x = torch.cat([x, *(embedded.sequences[i] for i in self.behaviour)], dim=1)
            fields_present = torch.ones_like(embedded.fields[..., 0], dtype=torch.bool)
            mask = torch.cat([fields_present, *(embedded.masks[i] for i in self.behaviour)],
                             dim=1)
        for layer in self.layers:
            x = layer(x, mask)
        return self.mlp(x.flatten(1)), None
