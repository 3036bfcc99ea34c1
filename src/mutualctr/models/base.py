"""The shape every CTR model shares: embedding -> backbone -> representation h -> linear head.

``forward`` returns both the logit and the representation, so fusion (CETNet) and distillation
(mutual learning, EKTF) need no special cases. Models with an additive "wide" part (LR, FM's
second-order term, DeepFM, Wide & Deep, xDeepFM) return it as ``residual_logit`` from
:meth:`CTRModel.represent`; it is added to the head's output so the model stays the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.models.embedding import FeatureEmbedding


@dataclass
class ModelOutput:
    logit: torch.Tensor  # [B]
    h: torch.Tensor  # [B, H]


@dataclass
class ModelConfig:
    """Hyperparameters every model has. Subclasses add their own fields with paper defaults."""

    embedding_dim: int = 16
    embedding_init_std: float = 1e-4


class CTRModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class`` and implement ``build``/``represent``.

    Attributes:
        representation_dim: size of ``h``; set by ``build``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, feature_map: FeatureMap, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.feature_map = feature_map
        self.config = config if config is not None else self.config_class()
        self.embedding = self.build_embedding()
        self.representation_dim = self.build()
        self.head = nn.Linear(self.representation_dim, 1)

    @property
    def num_fields(self) -> int:
        """Number of field embeddings ``F`` the backbone receives."""
        return self.feature_map.num_fields

    @property
    def flat_dim(self) -> int:
        """``F * D``: the size of the flattened field embeddings."""
        return self.feature_map.num_fields * self.config.embedding_dim

    def build_embedding(self) -> nn.Module:
        return FeatureEmbedding(
            self.feature_map, self.config.embedding_dim, self.config.embedding_init_std
        )

    def build(self) -> int:
        """Create the backbone's layers; return the representation size."""
        raise NotImplementedError

    def represent(
        self, batch: Batch, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(h [B, H], residual_logit [B] or None)`` from field embeddings ``[B, F, D]``."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> ModelOutput:
        h, residual = self.represent(batch, self.embedding(batch))
        logit = self.head(h).squeeze(-1)
        if residual is not None:
            logit = logit + residual
        return ModelOutput(logit=logit, h=h)
