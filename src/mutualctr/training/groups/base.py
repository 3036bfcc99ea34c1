"""A group of N CTR models run on the same batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelOutput


class ModelGroup(nn.Module):
    """N models with unique names; ``forward(batch)`` returns their outputs in order.

    A group of one is plain single-model training. Members keep their own parameters; models
    sharing an embedding hold the same module, and ``parameters()`` yields it once.
    """

    def __init__(self, models: Sequence[CTRModel], names: Sequence[str]) -> None:
        super().__init__()
        if len(models) != len(names):
            raise ValueError(f"{len(models)} models but {len(names)} names")
        if not models:
            raise ValueError("a group needs at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique, got {list(names)}")
        self.models = nn.ModuleList(models)
        self.names = list(names)

    def forward(self, batch: Batch) -> list[ModelOutput]:
        return [model(batch) for model in self.models]

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights, keyed as in a standalone model of its class."""
        return self.models[index].state_dict()

    def load_member_state_dict(self, index: int, state: dict[str, torch.Tensor]) -> None:
        """Load a standalone model's weights (e.g. a pretrained run's) into member ``index``."""
        self.models[index].load_state_dict(state)
