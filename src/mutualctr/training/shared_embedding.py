"""A group of K students over ONE shared feature embedding (EKTF, Li et al.).

Each student is an ordinary registry model (:class:`~mutualctr.models.base.CTRModel`); in the
group its own embedding is dropped and its ``represent`` is fed the shared embedding, computed
once per batch. :func:`export_student` turns one student back into a standalone model (its
backbone and head plus a copy of the shared embedding) for cheap serving.

Student sets from the paper: ``EKTF_MLP`` (homogeneous MLPs [400, 400, 400] with batch norm and
dropout 0.1, embedding 16, as in the authors' logs) and ``EKTF_Latest`` (PNN, FINAL and ECN).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.models.registry import build_model
from mutualctr.training.group import ModelGroup

MLP_STUDENT: dict[str, Any] = {"hidden_units": [400, 400, 400], "batch_norm": True,
                               "dropout": 0.1}
LATEST_STUDENTS: tuple[str, ...] = ("pnn", "final", "ecn")


@dataclass(frozen=True)
class StudentSpec:
    """One student: a registry model name and its hyperparameter overrides."""

    model: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


def mlp_students(k: int, overrides: Mapping[str, Any] | None = None) -> list[StudentSpec]:
    """EKTF_MLP: ``k`` identical DNN students (the authors' MLP settings unless overridden)."""
    if k < 1:
        raise ConfigError(f"the number of students must be >= 1, got {k}")
    return [StudentSpec("dnn", {**MLP_STUDENT, **(overrides or {})}) for _ in range(k)]


def latest_students(models: Sequence[str] = LATEST_STUDENTS) -> list[StudentSpec]:
    """EKTF_Latest: heterogeneous students, each with its registry (paper) defaults."""
    return [StudentSpec(model) for model in models]


def student_names(specs: Sequence[StudentSpec]) -> list[str]:
    """``<model>_<position>`` (1-based), e.g. ``dnn_1, dnn_2`` or ``pnn_1, final_2, ecn_3``."""
    return [f"{spec.model}_{i}" for i, spec in enumerate(specs, start=1)]


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
        super().__init__(students, names)
        self.embedding = students[0].embedding
        for student in students:
            student.embedding = None

    @classmethod
    def build(cls, feature_map: FeatureMap, specs: Sequence[StudentSpec],
              embedding_dim: int = 16) -> SharedEmbeddingGroup:
        """Build the students from the registry with a common ``embedding_dim``."""
        students = [
            build_model(spec.model, feature_map, {**spec.overrides, "embedding_dim": embedding_dim})
            for spec in specs
        ]
        return cls(students, student_names(specs))

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Student ``index`` as a standalone model of its class: its weights plus the shared
        embedding's (so run folders rebuild each student on its own)."""
        state = {f"embedding.{k}": v for k, v in self.embedding.state_dict().items()}
        state.update(self.models[index].state_dict())
        return state

    def forward(self, batch: Batch) -> list[ModelOutput]:
        emb = self.embedding(batch)
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
