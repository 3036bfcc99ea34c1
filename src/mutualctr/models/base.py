"""The shape every CTR model shares: embedding -> backbone -> representation h -> linear head.

``forward`` returns both the logit and the representation, so fusion (CETNet) and distillation
(mutual learning, EKTF) need no special cases. Models with an additive "wide" part (FM's
first-order term, DeepFM's linear + FM component, the linear parts of Wide & Deep, xDeepFM and
FiBiNET) return it as ``residual_logit`` from :meth:`CTRModel.represent`; it is added to the
head's output so the model stays the paper's. docs/models.md says what ``h`` is per model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.embedding import FeatureEmbedding
from mutualctr.models.layers.mlp import MLP


@dataclass
class ModelOutput:
    logit: torch.Tensor  # [B]
    h: torch.Tensor  # [B, H]


@dataclass
class ModelConfig:
    """Hyperparameters every model has. Subclasses add their own fields with paper defaults."""

    embedding_dim: int = 16
    embedding_init_std: float = 1e-4

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{f.name} must be >= 0, got {value}")


@dataclass
class MLPModelConfig(ModelConfig):
    """A model with one DNN tower. Default: the mutual-learning paper's MLP [400, 200, 100]."""

    hidden_units: tuple[int, ...] = (400, 200, 100)
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False

    def make_mlp(self, in_dim: int) -> MLP:
        return MLP(in_dim, self.hidden_units, self.activation, self.dropout, self.batch_norm)


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
        self.reset_head()

    @property
    def num_fields(self) -> int:
        """Number of field embeddings ``F`` the backbone receives."""
        return self.feature_map.num_fields

    @property
    def flat_dim(self) -> int:
        """``F * D``: the size of the flattened field embeddings."""
        return self.feature_map.num_fields * self.config.embedding_dim

    def field_index(self, name: str) -> int:
        """Position of feature ``name`` in the embedding's field order."""
        order = [f.name for f in self.feature_map.categorical + self.feature_map.sequence]
        order += [f.name for f in self.feature_map.numeric]
        if name not in order:
            raise ValueError(f"unknown feature {name!r}; features are {order}")
        return order.index(name)

    def build_embedding(self) -> nn.Module:
        return FeatureEmbedding(
            self.feature_map, self.config.embedding_dim, self.config.embedding_init_std
        )

    def build(self) -> int:
        """Create the backbone's layers; return the representation size."""
        raise NotImplementedError

    def reset_head(self) -> None:
        """Initialise the linear head; PyTorch's default unless a model needs otherwise."""

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
