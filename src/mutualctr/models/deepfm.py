"""DeepFM (Guo et al., IJCAI 2017): FM and a DNN over one shared embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig
from mutualctr.models.layers import LinearTerm, fm_interaction


@dataclass
class DeepFMConfig(MLPModelConfig):
    """Defaults: the mutual-learning paper's shared setup (embedding 16, MLP [400, 200, 100])."""


class DeepFM(CTRModel):
    """``logit = linear(x) + FM_2(emb) + head(MLP(flatten(emb)))`` (Guo et al. 2017, Eq. 1).

    ``h`` is the DNN's last hidden layer; the FM component (first-order term plus the
    sum-square second-order term) is the residual logit, as in the paper where the two
    components' outputs are added before the sigmoid.
    """

    name = "deepfm"
    config_class = DeepFMConfig

    def build(self) -> int:
        self.linear = LinearTerm(self.inputs, self.config.embedding_init_std)
        self.mlp = self.config.make_mlp(self.flat_dim)
        return self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fm = self.linear(batch) + fm_interaction(emb).sum(dim=1)
        return self.mlp(emb.flatten(1)), fm
