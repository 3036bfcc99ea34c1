"""One embedding lookup for all fields of a batch.

Categorical and sequence ids are field-local (see :mod:`mutualctr.data.schema`); one table holds
every field's rows, and per-field offsets turn local ids into rows, so a batch costs a single
``index_select`` whatever the number of fields (TorchRec's EmbeddingBagCollection idea, without
sharding). Sequence (multi-hot) fields are mean-pooled over their non-padding ids; models that
read a sequence position by position (DIN, DIEN, ...) take the unpooled rows from
:meth:`FeatureEmbedding.embed`. A feature with ``share_with`` (a behaviour history of items)
takes no rows of its own: its ids index the rows of the feature it shares with. Numeric fields
get one learned vector each, scaled by the value (as FuxiCTR does).
A model's ``model_config.exclude_fields`` leaves fields out: the embedding is then built from
the fields it reads (:mod:`mutualctr.models.inputs`) and selects them from each batch.

With :attr:`FeatureEmbedding.sparse_gradients` set (the trainer sets it for
``train.optimizer: lazy_adam``), a training lookup gives the table a sparse gradient holding only
the rows the batch looked up (:func:`look_up_rows`), instead of a table-sized dense one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import PAD_ID, FeatureMap
from mutualctr.models.inputs import ModelInputs, as_inputs


@dataclass
class Embedded:
    """One batch's embeddings.

    Attributes:
        fields: ``[B, F, D]`` one vector per field (sequences mean-pooled), in
            :class:`FeatureEmbedding`'s field order.
        sequences: per sequence field (feature-map order), its rows ``[B, L, D]`` position by
            position, padding positions included.
        masks: per sequence field, ``[B, L]`` bool, True where the position holds an id.
    """

    fields: torch.Tensor
    sequences: tuple[torch.Tensor, ...] = ()
    masks: tuple[torch.Tensor, ...] = ()


def _table_offsets(feature_map: FeatureMap) -> tuple[list[int], int]:
    """Each categorical and sequence feature's first row in the shared table, and the table's
    size. A feature that ``share_with`` another starts at that feature's row."""
    sparse = feature_map.categorical + feature_map.sequence
    names = [f.name for f in sparse]
    own: dict[str, int] = {}
    size = 0
    for f in sparse:
        if not f.share_with:
            own[f.name] = size
            size += f.vocab_size
    offsets = []
    for f in sparse:
        target = f.share_with or f.name
        if target not in own:
            raise ValueError(f"feature {f.name!r} shares with {target!r}, which is not one of "
                             f"the categorical or sequence features {names} with rows of its own")
        if f.vocab_size != next(g.vocab_size for g in sparse if g.name == target):
            raise ValueError(f"feature {f.name!r} shares with {target!r} but their vocabulary "
                             "sizes differ")
        offsets.append(own[target])
    return offsets, size


class _RowSparseLookup(torch.autograd.Function):
    """``table.flatten(1).index_select(0, ids)`` whose backward gives ``table`` a sparse COO
    gradient with one entry per distinct row looked up, in row order, its values the summed
    gradients of that row's lookups (what ``nn.Embedding(sparse=True)`` gives, with the
    duplicates summed here at once)."""

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.table_shape = table.shape
        return table.flatten(1).index_select(0, ids)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        rows, inverse = torch.unique(ids, return_inverse=True)
        values = grad.new_zeros(len(rows), grad.shape[1]).index_add_(0, inverse, grad)
        shape = ctx.table_shape
        return row_sparse_tensor(rows, values.view(len(rows), *shape[1:]), shape), None


def row_sparse_tensor(rows: torch.Tensor, values: torch.Tensor,
                      shape: torch.Size) -> torch.Tensor:
    """The coalesced sparse COO tensor of ``shape`` holding ``values[i]`` at row ``rows[i]``;
    ``rows`` must be distinct and increasing (not checked: the callers know it)."""
    with warnings.catch_warnings():  # torch 2.11 warns once that the checks are off
        warnings.simplefilter("ignore")
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape, is_coalesced=True,
                                       check_invariants=False)


def look_up_rows(table: torch.Tensor, ids: torch.Tensor, sparse_gradient: bool) -> torch.Tensor:
    """Rows ``ids`` of ``table`` (``[R, D]``, or a batched group's ``[R, N, D]``) as
    ``[len(ids), D]`` (``[len(ids), N * D]``). ``sparse_gradient``: the table's gradient is a
    sparse tensor over the looked-up rows (:class:`_RowSparseLookup`); else a dense one, through
    ``index_select``, whose backward (zeros + ``index_add_``) is markedly faster on CPU than
    ``nn.Embedding``'s ``embedding_dense_backward``."""
    if sparse_gradient and table.requires_grad and torch.is_grad_enabled():
        return _RowSparseLookup.apply(table, ids)
    return table.flatten(1).index_select(0, ids)


NumericInit = Literal["normal", "xavier"]
NUMERIC_INITS: tuple[str, ...] = get_args(NumericInit)


def numeric_init_std(numeric_init: NumericInit, dim: int, init_std: float) -> float:
    """The standard deviation a numeric field's vector starts with.

    ``normal``: ``init_std``, as the categorical rows. ``xavier``: FuxiCTR's start, whose
    ``FeatureEmbeddingDict`` embeds a numeric field with ``nn.Linear(1, dim, bias=False)`` and
    re-initialises it Xavier-normal, std ``sqrt(2 / (1 + dim))`` (0.34 at ``dim`` 16). Which
    is better depends on the model and data: DIEN from ``normal`` trailed FuxiCTR's by 0.007
    test AUC on a store with numeric fields and was level with it from ``xavier``, while DeepFM
    on a small store with one numeric field learned faster from ``normal`` (docs/models.md,
    "Shared pieces")."""
    if numeric_init == "normal":
        return init_std
    if numeric_init == "xavier":
        return (2.0 / (1 + dim)) ** 0.5
    raise ValueError(f"numeric_init must be one of {NUMERIC_INITS}, got {numeric_init!r}")


class FeatureEmbedding(nn.Module):
    """Maps a :class:`Batch` to field embeddings ``[B, F, dim]``.

    Field order: categorical fields, then sequence fields, then numeric fields, each in
    feature-map order. ``inputs``: every field of the batches (a feature map), or the fields a
    model reads of them (:class:`~mutualctr.models.inputs.ModelInputs`, which selects them
    from each batch: an excluded field has no rows).
    """

    def __init__(self, inputs: FeatureMap | ModelInputs, dim: int, init_std: float = 1e-4,
                 numeric_init: NumericInit = "normal") -> None:
        super().__init__()
        self.inputs = as_inputs(inputs)
        self.feature_map = feature_map = self.inputs.feature_map
        self.dim = dim
        row_offsets, rows = _table_offsets(feature_map)
        offsets = torch.tensor(row_offsets, dtype=torch.long)
        n_cat = len(feature_map.categorical)
        self.register_buffer("cat_offsets", offsets[:n_cat].clone(), persistent=False)
        self.seq_lens = [f.max_len for f in feature_map.sequence]
        self.register_buffer("seq_offsets", offsets[n_cat:].clone(), persistent=False)
        self.table = nn.Embedding(max(rows, 1), dim)
        nn.init.normal_(self.table.weight, std=init_std)
        self.sparse_gradients = False  # see look_up_rows; set by the trainer
        # no parameter for absent inputs: a (0, dim) one gets no gradient, which DDP refuses
        self.numeric_weight: nn.Parameter | None = None
        if feature_map.numeric:
            self.numeric_weight = nn.Parameter(torch.empty(len(feature_map.numeric), dim))
            nn.init.normal_(self.numeric_weight, std=numeric_init_std(numeric_init, dim, init_std))

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
        """Field embeddings ``[B, F, D]``."""
        return self.embed(batch).fields

    def embed(self, batch: Batch) -> Embedded:
        """Field embeddings plus each sequence's rows and mask (one gather for all)."""
        batch = self.inputs.select(batch)
        ids = [batch.categorical + self.cat_offsets]
        ids += [seq + off for seq, off in zip(batch.sequences, self.seq_offsets, strict=True)]
        flat_ids = ids[0] if len(ids) == 1 else torch.cat(ids, dim=1)
        rows = look_up_rows(self.table.weight, flat_ids.flatten(),
                            self.sparse_gradients and self.training)
        rows = rows.view(*flat_ids.shape, self.dim)  # [B, n_cat + sum(seq_lens), dim]
        return embedded_from_rows(batch, rows, self.seq_lens, self.numeric_weight)


def embedded_from_rows(
    batch: Batch, rows: torch.Tensor, seq_lens: Sequence[int],
    numeric_weight: torch.Tensor | None,
) -> Embedded:
    """:class:`Embedded` from the looked-up rows ``[B, positions, D]`` (categorical fields,
    then every sequence position, wherever they were looked up: one table here, TorchRec's
    shards in :mod:`mutualctr.distributed.sharding`): sequences mean-pooled over their non-padding
    ids, numeric fields as value times weight."""
    n_cat = batch.categorical.shape[1]
    parts, sequences, masks = [rows[:, :n_cat]], [], []
    start = n_cat
    for seq, length in zip(batch.sequences, seq_lens, strict=True):
        present = seq != PAD_ID  # [B, L]
        seq_rows = rows[:, start : start + length]
        mask = present.unsqueeze(-1).to(rows.dtype)  # [B, L, 1]
        parts.append(((seq_rows * mask).sum(1) / mask.sum(1).clamp_min(1.0)).unsqueeze(1))
        sequences.append(seq_rows)
        masks.append(present)
        start += length
    if numeric_weight is not None:  # [F, D], or a batched group's [F, N, D] as [F, N * D]
        parts.append(batch.numeric.unsqueeze(-1) * numeric_weight.flatten(1))
    fields = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return Embedded(fields, tuple(sequences), tuple(masks))
