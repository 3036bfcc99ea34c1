"""One embedding lookup for all fields of a batch.

Categorical and sequence ids are field-local (see :mod:`mutualctr.data.schema`); one table holds
every field's rows, and per-field offsets turn local ids into rows, so a batch costs a single
``index_select`` whatever the number of fields (TorchRec's EmbeddingBagCollection idea, without
sharding). Sequence (multi-hot) fields are mean-pooled over their non-padding ids. Numeric fields
get one learned vector each, scaled by the value (as FuxiCTR does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import PAD_ID, FeatureMap


class FeatureEmbedding(nn.Module):
    """Maps a :class:`Batch` to field embeddings ``[B, F, dim]``.

    Field order: categorical fields, then sequence fields, then numeric fields, each in
    feature-map order.
    """

    def __init__(self, feature_map: FeatureMap, dim: int, init_std: float = 1e-4) -> None:
        super().__init__()
        self.feature_map = feature_map
        self.dim = dim
        sparse = feature_map.categorical + feature_map.sequence
        sizes = torch.tensor([f.vocab_size for f in sparse], dtype=torch.long)
        offsets = torch.cumsum(sizes, 0) - sizes
        n_cat = len(feature_map.categorical)
        self.register_buffer("cat_offsets", offsets[:n_cat].clone(), persistent=False)
        self.seq_lens = [f.max_len for f in feature_map.sequence]
        self.register_buffer("seq_offsets", offsets[n_cat:].clone(), persistent=False)
        self.table = nn.Embedding(max(int(sizes.sum()), 1), dim)
        nn.init.normal_(self.table.weight, std=init_std)
        # no parameter for absent inputs: a (0, dim) one gets no gradient, which DDP refuses
        self.numeric_weight: nn.Parameter | None = None
        if feature_map.numeric:
            self.numeric_weight = nn.Parameter(torch.empty(len(feature_map.numeric), dim))
            nn.init.normal_(self.numeric_weight, std=init_std)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        """Weights saved when every model had a numeric weight, (0, dim) without numeric
        fields, still load: that empty tensor is dropped."""
        key = prefix + "numeric_weight"
        if self.numeric_weight is None and key in state_dict and not state_dict[key].numel():
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def num_fields(self) -> int:
        return self.feature_map.num_fields

    def forward(self, batch: Batch) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        ids = [batch.categorical + self.cat_offsets]
        ids += [seq + off for seq, off in zip(batch.sequences, self.seq_offsets, strict=True)]
        flat_ids = ids[0] if len(ids) == 1 else torch.cat(ids, dim=1)
        # index_select's backward (zeros + index_add_) is markedly faster on CPU than
        # nn.Embedding's embedding_dense_backward.
        rows = self.table.weight.index_select(0, flat_ids.flatten())
        rows = rows.view(*flat_ids.shape, self.dim)  # [B, n_cat + sum(seq_lens), dim]
        n_cat = batch.categorical.shape[1]
        parts.append(rows[:, :n_cat])
        start = n_cat
        for seq, length in zip(batch.sequences, self.seq_lens, strict=True):
            mask = (seq != PAD_ID).unsqueeze(-1).to(rows.dtype)  # [B, L, 1]
            pooled = (rows[:, start : start + length] * mask).sum(1)
            parts.append((pooled / mask.sum(1).clamp_min(1.0)).unsqueeze(1))
            start += length
        if self.numeric_weight is not None:
            parts.append(batch.numeric.unsqueeze(-1) * self.numeric_weight)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
