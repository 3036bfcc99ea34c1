"""KD-DAGFM's distillation group (Tian et al., WSDM 2023): a frozen teacher and a student over
the teacher's embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup


class DistillationGroup(SharedEmbeddingGroup):
    """``[teacher, student]`` over the teacher's embedding.

    The teacher and the embedding are frozen: not trainable (so not optimised, no L2), run
    without autograd (the authors detach the embedding) and kept in eval mode while the
    student trains.
    """

    def __init__(self, teacher: CTRModel, student: CTRModel, names: Sequence[str]) -> None:
        super().__init__([teacher, student], names)
        for frozen in (self.embedding, teacher):
            frozen.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> DistillationGroup:
        super().train(mode)
        self.embedding.eval()
        self.models[0].eval()
        return self

    def forward(self, batch: Batch) -> list[ModelOutput]:
        with torch.no_grad():
            emb = self.embedding.embed(batch)
            teacher = self.models[0].forward_embedded(batch, emb)
        return [teacher, self.models[1].forward_embedded(batch, emb)]
