"""Which behaviour sequences a target-attention model (DIN, DIEN) reads, and their embeddings.

A sequence feature with ``share_with`` naming a categorical feature (``hist_item`` sharing with
``item``) is that target's behaviour history. All such pairs form one attention unit: the
targets' embeddings are concatenated into the query and the histories' into the keys, position
by position, as FuxiCTR's DIN and DIEN do with tuple target and sequence fields (``(item_id,
cate_id)`` against ``(click_history, cate_history)``). Other sequence fields (a movie's genres)
stay ordinary mean-pooled fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mutualctr.data.schema import FeatureMap
from mutualctr.models.embedding import Embedded


@dataclass(frozen=True)
class BehaviourPairs:
    """The (history, target) pairs of a feature map.

    Attributes:
        sequences: each history's index in :attr:`Embedded.sequences` (feature-map order).
        history_fields: each history's position among the field embeddings ``[B, F, D]``
            (where its mean-pooled vector sits).
        target_fields: each target's position among the field embeddings.
        other_fields: the positions of every field that is not a paired history.
    """

    sequences: tuple[int, ...]
    history_fields: tuple[int, ...]
    target_fields: tuple[int, ...]
    other_fields: tuple[int, ...]

    @classmethod
    def of(cls, feature_map: FeatureMap, field_index: Callable[[str], int]) -> BehaviourPairs:
        """The pairs of ``feature_map``; ``field_index`` gives a feature's field position
        (:meth:`CTRModel.field_index`). Paired histories must have one length, since their
        positions are concatenated."""
        categorical = {f.name for f in feature_map.categorical}
        paired = [(k, f) for k, f in enumerate(feature_map.sequence)
                  if f.share_with in categorical]
        if len({f.max_len for _, f in paired}) > 1:
            lengths = {f.name: f.max_len for _, f in paired}
            raise ValueError(f"behaviour sequences paired with targets must have one length, "
                             f"got {lengths}")
        history_fields = tuple(field_index(f.name) for _, f in paired)
        return cls(
            sequences=tuple(k for k, _ in paired),
            history_fields=history_fields,
            target_fields=tuple(field_index(f.share_with) for _, f in paired),
            other_fields=tuple(i for i in range(feature_map.num_fields)
                               if i not in history_fields),
        )

    def __len__(self) -> int:
        return len(self.sequences)

    def query(self, fields: torch.Tensor) -> torch.Tensor:
        """The targets' embeddings side by side, ``[B, P * D]`` from ``fields`` ``[B, F, D]``."""
        return fields[:, list(self.target_fields)].flatten(1)

    def keys(self, embedded: Embedded) -> tuple[torch.Tensor, torch.Tensor]:
        """The histories side by side per position, ``[B, L, P * D]``, zero at padding (as
        FuxiCTR's zero padding row), and the first history's mask ``[B, L]`` (FuxiCTR's
        choice; paired histories are padded alike)."""
        mask = embedded.masks[self.sequences[0]]
        keys = torch.cat([embedded.sequences[k] for k in self.sequences], dim=-1)
        return keys * mask.unsqueeze(-1).to(keys.dtype), mask

    def others(self, fields: torch.Tensor) -> torch.Tensor:
        """The field embeddings that are not paired histories, ``[B, F - P, D]``."""
        return fields[:, list(self.other_fields)]
