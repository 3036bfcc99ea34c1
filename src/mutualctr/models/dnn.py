"""A plain MLP over the concatenated field embeddings (FuxiCTR's ``DNN``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, MLPModelConfig


@dataclass
class DNNConfig(MLPModelConfig):
    """Defaults: BARS's tuned DNN on Criteo (three layers of 400, ReLU, no batch norm)."""

    hidden_units: tuple[int, ...] = (400, 400, 400)


class DNN(CTRModel):
    """``h`` = the MLP's last hidden layer over ``flatten(emb)``."""

    name = "dnn"
    config_class = DNNConfig

    def build(self) -> int:
        self.mlp = self.config.make_mlp(self.flat_dim)
        return self.mlp.out_dim

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.mlp(emb.flatten(1)), None
