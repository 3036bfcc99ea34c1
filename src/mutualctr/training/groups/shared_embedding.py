"""A group of K students over ONE shared feature embedding (EKTF, Li et al.).

Each student is an ordinary registry model (:class:`~mutualctr.models.base.CTRModel`); in the
group its own embedding is dropped and its ``represent`` is fed the shared embedding, computed
once per batch. :func:`export_student` turns one student back into a standalone model (its
backbone and head plus a copy of the shared embedding) for cheap serving.

The EKTF method (:mod:`mutualctr.methods.ektf`) builds its students into this group; CETNet's
"w/o multi-embedding" ablation uses it too.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.training.groups.base import ModelGroup


class SharedEmbeddingGroup(ModelGroup):
    """K students sharing one :class:`~mutualctr.models.embedding.FeatureEmbedding`.

    ``forward(batch)`` looks the embedding up once and returns one :class:`ModelOutput` per
    student, in ``names`` order. The students' own embeddings are dropped (``None``), so
    checkpoints hold the table once.
    """

    def __init__(self, students: Sequence[CTRModel], names: Sequence[str]) -> None:
        dims = {s.config.embedding_dim for s in students}
        if len(dims) > 1:
            raise ConfigError(f"students sharing an embedding need one embedding_dim, got {dims}")
        fields = {s.inputs.excluded for s in students}
        if len(fields) > 1:
            raise ConfigError("students sharing an embedding need one model_config."
                              f"exclude_fields, got {sorted(fields)}")
        super().__init__(students, names)
        self.embedding = students[0].embedding
        for student in students:
            student.embedding = None

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Student ``index`` as a standalone model of its class: its weights plus the shared
        embedding's (so run folders rebuild each student on its own)."""
        state = {f"embedding.{k}": v for k, v in self.embedding.state_dict().items()}
        state.update(self.models[index].state_dict())
        return state

    def forward(self, batch: Batch) -> list[ModelOutput]:
        emb = self.embedding.embed(batch)
        return [student.forward_embedded(batch, emb) for student in self.models]


def export_student(group: SharedEmbeddingGroup, name: str) -> CTRModel:
    """A standalone copy of student ``name``: its backbone and head with the shared embedding.

    ``export_student(group, n)(batch).logit`` equals the group's output for ``n``.
    """
    if name not in group.names:
        raise ConfigError(f"no student {name!r}; the group has {group.names}")
    model = copy.deepcopy(group.models[group.names.index(name)])
    model.embedding = copy.deepcopy(group.embedding)
    return model
