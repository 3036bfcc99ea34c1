"""A group of N models of one architecture run as one batched model.

The members' parameters are stacked (members along dim 0; for embeddings along dim 1, below)
and held as real ``nn.Parameter``s, so optimizers, ``state_dict`` checkpoints and gradient
clipping see ordinary parameters; ``state_dict`` gives every tensor members first,
``[N, ...]``. ``forward`` runs the architecture with ``torch.func.functional_call`` under
``torch.func.vmap`` over the members: their matrix products become batched matmuls instead of
N separate passes. The results equal N separate models' (tests check it); a member can be read
out (:meth:`member_state_dict`, :meth:`unstack`) or loaded from a pretrained model
(:meth:`load_member_state_dict`).

Embedding lookups run outside ``vmap``. Under ``vmap`` a lookup in a member's slice of an
``[N, V, D]`` table becomes a ``gather`` with an index expanded over members and columns, about
4x slower per row than ``index_select``, and its backward a ``scatter_add`` of the same size
(docs/benchmarks.md, "Batched groups"). Instead every
:class:`~mutualctr.models.embedding.FeatureEmbedding` parameter is stored ``[V, N, D]``, so
that ``[V, N * D]`` is a view of it: one ``index_select`` of ``N * D``-wide rows, by the
embedding's own code run at width ``N * D`` (:class:`_WideLookup`), looks up every member at
once, and its backward is one ``index_add_`` of such rows. Inside ``vmap`` each member's
embedding returns its slice of that result (:class:`_LookedUp`). Under autocast the stacked
linear layers add their bias in the product's dtype (:func:`_linear_in_product_dtype`).

Randomness (dropout) under vmap is drawn independently per member, so with dropout the
batched and unbatched groups agree in distribution, not sample by sample.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.models.embedding import Embedded, FeatureEmbedding


def can_batch(models: Sequence[nn.Module]) -> bool:
    """Whether the models share one architecture: same class, same parameter/buffer shapes and
    the same inputs (``exclude_fields``: one lookup serves every member)."""
    if len(models) < 2:
        return False
    first = models[0]
    shapes = _shapes(first)
    inputs = getattr(first, "inputs", None)
    return all(type(m) is type(first) and _shapes(m) == shapes
               and getattr(m, "inputs", None) == inputs for m in models[1:])


def _shapes(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    tensors = dict(model.named_parameters())
    tensors.update(_persistent_buffers(model))
    return {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}


def _persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers that belong to the state (e.g. batch-norm statistics), not derived constants."""
    state_keys = set(model.state_dict(keep_vars=True))
    return {name: b for name, b in model.named_buffers() if name in state_keys}


def _per_member(wide: torch.Tensor, members: int) -> torch.Tensor:
    """``[..., N * D]`` -> ``[N, ..., D]``, contiguous (the per-member slices ``vmap`` reads)."""
    return wide.unflatten(-1, (members, -1)).movedim(-2, 0).contiguous()


class _WideLookup(nn.Module):
    """The lookup of a member-stacked :class:`FeatureEmbedding` for all ``N`` members at once:
    the embedding's own ``embed`` run at width ``N * D`` on its ``[R, N, D]`` parameters viewed
    as ``[R, N * D]`` (:meth:`look_up`). Holds the embedding's buffers (field offsets), not its
    parameters."""

    def __init__(self, embedding: FeatureEmbedding, members: int) -> None:
        super().__init__()
        # the copy's parameters are given per call; do not copy the tables
        self.embedding = copy.deepcopy(embedding, {id(p): None for p in embedding.parameters()})
        self.embedding.dim = members * embedding.dim
        self.members = members

    def forward(self, batch: Batch) -> Embedded:
        return self.embedding.embed(batch)

    def look_up(self, batch: Batch, params: dict[str, torch.Tensor]) -> Embedded:
        """Each member's embeddings on a leading dimension (masks are shared); ``params``: the
        embedding's ``[R, N, D]`` parameters by their names in the embedding."""
        # the embedding reads its [R, N, D] tensors as [R, N * D] (look_up_rows,
        # embedded_from_rows), so that a sparse gradient keeps the parameter's shape
        out = functional_call(self, {f"embedding.{n}": t for n, t in params.items()}, (batch,))
        return Embedded(
            _per_member(out.fields, self.members),
            tuple(_per_member(s, self.members) for s in out.sequences),
            out.masks,
        )


class _LookedUp:
    """What each stacked embedding returns inside ``vmap``: the member's slice of its wide
    lookup (:attr:`current`, by embedding path), through :meth:`embed_of` in place of the
    embedding's own ``embed``. For another batch than the group's (no model embeds one) the
    embedding looks up itself."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.current: dict[str, Embedded] = {}

    def embed_of(self, path: str, module: FeatureEmbedding) -> Callable[[Batch], Embedded]:
        def embed(batch: Batch) -> Embedded:
            if batch is self.batch:
                return self.current[path]
            return type(module).embed(module, batch)

        return embed


def _linear_in_product_dtype(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear.forward`` as ``vmap`` runs it (a matrix product, then the bias added) with
    the bias cast to the product's dtype. ``vmap`` splits ``linear`` into those two ops before
    autocast sees them, so under bfloat16 autocast the add would promote the bfloat16 product
    to float32 (and every following elementwise op would run in float32, with casts back
    before each product), where one model's ``linear`` stays in bfloat16."""
    out = torch.matmul(x, module.weight.t())
    return out if module.bias is None else out + module.bias.to(out.dtype)


@contextlib.contextmanager
def _overriding(overrides: list[tuple[nn.Module, str, Callable[..., object]]]) -> Iterator[None]:
    """``module.name = function`` for each override (an instance attribute, shadowing the
    class's method) for the duration; the class's methods again after."""
    for module, name, function in overrides:
        setattr(module, name, function)
    try:
        yield
    finally:
        for module, name, _ in overrides:
            delattr(module, name)


def _replace_state(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Put ``tensors`` in place of the parameters/buffers of those names (shapes may change)."""
    for name, value in tensors.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        store = owner._parameters if attr in owner._parameters else owner._buffers
        store[attr] = value


class BatchedModelGroup(nn.Module):
    """N models of one architecture as stacked parameters; ``forward(batch) -> list[ModelOutput]``.

    Args:
        models: the members; they must share class and shapes (see :func:`can_batch`). Their
            current weights are copied into the group; the modules themselves are not kept.
        names: one name per member.
    """

    def __init__(self, models: Sequence[CTRModel], names: Sequence[str]) -> None:
        super().__init__()
        if len(models) != len(names):
            raise ConfigError(f"{len(models)} models but {len(names)} names")
        if not can_batch(models):
            raise ConfigError("a batched group needs >= 2 models of one architecture and size")
        if len(set(names)) != len(names):
            raise ConfigError(f"member names must be unique, got {list(names)}")
        self.names = list(names)
        self.size = len(models)
        # A copy of the architecture whose parameters (and persistent buffers) are replaced by
        # the members' stacked, along dim 0 or, for embeddings, dim 1 (:meth:`member_dim`). It
        # is never called directly: ``forward`` runs it through functional_call on one
        # member's slices. Keeping the module tree means the stacked parameters keep their
        # qualified names and owning module types, so checkpoints read naturally and the
        # trainer's L2 split (embedding vs network) applies.
        self.stacked = copy.deepcopy(models[0])
        self.embedding_paths = [name for name, m in self.stacked.named_modules()
                                if isinstance(m, FeatureEmbedding)]
        states = [dict(m.named_parameters()) for m in models]
        stacked: dict[str, torch.Tensor] = {
            name: nn.Parameter(torch.stack([s[name].detach() for s in states],
                                           dim=self.member_dim(name)))
            for name in states[0]
        }
        buffers = [_persistent_buffers(m) for m in models]
        stacked.update({name: torch.stack([b[name].detach() for b in buffers],
                                          dim=self.member_dim(name))
                        for name in buffers[0]})
        _replace_state(self.stacked, stacked)
        self.lookups = nn.ModuleList(
            _WideLookup(self.stacked.get_submodule(path), self.size)
            for path in self.embedding_paths
        )
        self.register_state_dict_post_hook(_members_first)
        self.register_load_state_dict_pre_hook(_members_second)

    def _embedding_of(self, name: str) -> str | None:
        """The path of the embedding that parameter ``name`` belongs to, if any."""
        return next((p for p in self.embedding_paths if name.startswith(f"{p}.")), None)

    def member_dim(self, name: str) -> int:
        """The dimension of stacked tensor ``name`` that indexes the members: 1 for embedding
        parameters (``[R, N, D]``, so that ``[R, N * D]`` is a view: one lookup serves every
        member), 0 for all others. ``state_dict`` gives every tensor members first."""
        return 1 if self._embedding_of(name) else 0

    def _state(self) -> dict[str, torch.Tensor]:
        """The stacked parameters and persistent buffers by their architecture names."""
        return self.stacked.state_dict(keep_vars=True)

    def _look_up(self, batch: Batch, state: dict[str, torch.Tensor]) -> dict[str, Embedded]:
        """Every embedding's lookup for all members, ``[N, ...]`` tensors by embedding path."""
        looked_up = {}
        for path, lookup in zip(self.embedding_paths, self.lookups, strict=True):
            params = {name.removeprefix(f"{path}."): t for name, t in state.items()
                      if self._embedding_of(name) == path}
            looked_up[path] = lookup.look_up(batch, params)
        return looked_up

    def _overrides(
        self, slices: _LookedUp, batch: Batch,
    ) -> list[tuple[nn.Module, str, Callable[..., object]]]:
        """What the stacked architecture's modules do differently inside ``vmap``: embeddings
        return their slice of the wide lookup; under autocast, linear layers keep the bias
        add in the product's dtype (:func:`_linear_in_product_dtype`)."""
        overrides: list[tuple[nn.Module, str, Callable[..., object]]] = []
        for path in self.embedding_paths:
            module = self.stacked.get_submodule(path)
            overrides.append((module, "embed", slices.embed_of(path, module)))
        if torch.is_autocast_enabled(batch.label.device.type):
            overrides += [(m, "forward", functools.partial(_linear_in_product_dtype, m))
                          for m in self.stacked.modules() if isinstance(m, nn.Linear)]
        return overrides

    def forward(self, batch: Batch) -> list[ModelOutput]:
        kind, _ = self.stacked.auxiliary()
        state = self._state()
        looked_up = self._look_up(batch, state)
        slices = _LookedUp(batch)
        overrides = self._overrides(slices, batch)

        def run_one(
            state: dict[str, torch.Tensor], member: dict[str, tuple[torch.Tensor, ...]],
        ) -> dict[str, torch.Tensor]:
            for path, (fields, *sequences) in member.items():
                slices.current[path] = Embedded(fields, tuple(sequences), looked_up[path].masks)
            out = functional_call(self.stacked, state, (batch,))
            tensors = {"logit": out.logit, "h": out.h}
            if out.aux_logits is not None:
                tensors["aux_logits"] = out.aux_logits
            if out.extra_loss is not None:  # DIEN's next-behaviour loss, one per member
                tensors["extra_loss"] = out.extra_loss
            return tensors

        members = {path: (e.fields, *e.sequences) for path, e in looked_up.items()}
        dims = {name: self.member_dim(name) for name in state}
        with _overriding(overrides):
            stacked = vmap(run_one, in_dims=(dims, 0), randomness="different")(state, members)
        return [ModelOutput(**{k: v[i] for k, v in stacked.items()}, aux_loss=kind)
                for i in range(self.size)]

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights under the architecture's own names (a standalone model's
        ``state_dict``; the tensors are copies)."""
        return {name: t.select(self.member_dim(name), index).detach().clone(
                    memory_format=torch.contiguous_format)
                for name, t in self._state().items()}

    @torch.no_grad()
    def load_member_state_dict(self, index: int, state: dict[str, torch.Tensor]) -> None:
        """Copy a standalone model's ``state_dict`` into member ``index`` (strict on names)."""
        expected = set(self._state())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ConfigError(
                f"member state does not fit the architecture: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for name, target in self._state().items():
            target.select(self.member_dim(name), index).copy_(state[name])

    def unstack(self) -> list[CTRModel]:
        """The members as standalone models, each with its own copy of its weights."""
        members = []
        for i in range(self.size):
            model = copy.deepcopy(self.stacked)
            params = dict(model.named_parameters())
            _replace_state(model, {
                name: nn.Parameter(t) if name in params else t
                for name, t in self.member_state_dict(i).items()
            })
            members.append(model)
        return members


def _stacked_keys(group: BatchedModelGroup, prefix: str) -> dict[str, str]:
    """State-dict keys of the embedding parameters stacked along dim 1 -> their names."""
    return {f"{prefix}stacked.{name}": name for name in group._state()
            if group.member_dim(name) == 1}


def _members_first(
    group: BatchedModelGroup, state: dict[str, Any], prefix: str, _metadata: Any,
) -> None:
    """``state_dict`` hook: every stacked tensor members first, ``[N, R, D]`` (a view)."""
    for key in _stacked_keys(group, prefix):
        state[key] = state[key].movedim(1, 0)


def _members_second(
    group: BatchedModelGroup, state: dict[str, Any], prefix: str, *_args: Any,
) -> None:
    """``load_state_dict`` hook: the ``[N, R, D]`` embedding tensors of a state dict back to
    the parameters' ``[R, N, D]``."""
    for key in _stacked_keys(group, prefix):
        if key in state:
            state[key] = state[key].movedim(0, 1)
