"""Wide & Deep (Cheng et al., DLRS 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import LinearTerm


@dataclass
class WideDeepConfig(MLPModelConfig):
    """Defaults: BARS's tuned Wide & Deep on Criteo (MLP [400, 400, 400])."""

    hidden_units: tuple[int, ...] = (400, 400, 400)


class WideDeep(CTRModel):
    """``logit = wide(x) + head(MLP(flatten(emb)))`` (Cheng et al. 2016, Eq. 3).

    ``h`` is the deep part's last hidden layer; the wide part is a linear model over the raw
    feature values (no hand-made cross-product features: we have no such feature engineering,
    as in FuxiCTR's and BARS's versions) and is the residual logit.
    """

    name = "wide_deep"
    config_class = WideDeepConfig

    def build(self) -> int:
        self.wide = LinearTerm(self.inputs, self.config.embedding_init_std)
        self.mlp = self.config.make_mlp(self.flat_dim)
        return self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(emb.flatten(1)), self.wide(batch)
