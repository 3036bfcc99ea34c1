"""A group of N models of one architecture run as one batched model.

The members' parameters are stacked along a new leading dimension (``torch.func.
stack_module_state``) and held as real ``nn.Parameter``s of shape ``[N, ...]``, so optimizers,
``state_dict`` checkpoints and gradient clipping see ordinary parameters. ``forward`` runs the
architecture with ``torch.func.functional_call`` under ``torch.func.vmap`` over the stacked
dimension: the N members' matrix products become batched matmuls and their
embedding lookups one gather, instead of N separate passes. The results equal N separate
models' (tests check it); a member can be read out (:meth:`member_state_dict`, :meth:`unstack`)
or loaded from a pretrained model (:meth:`load_member_state_dict`).

Randomness (dropout) under vmap is drawn independently per member, so with dropout the
batched and unbatched groups agree in distribution, not sample by sample.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput


def can_batch(models: Sequence[nn.Module]) -> bool:
    """Whether the models share one architecture: same class and same parameter/buffer shapes."""
    if len(models) < 2:
        return False
    first = models[0]
    shapes = _shapes(first)
    return all(type(m) is type(first) and _shapes(m) == shapes for m in models[1:])


def _shapes(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    tensors = dict(model.named_parameters())
    tensors.update(_persistent_buffers(model))
    return {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}


def _persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers that belong to the state (e.g. batch-norm statistics), not derived constants."""
    state_keys = set(model.state_dict(keep_vars=True))
    return {name: b for name, b in model.named_buffers() if name in state_keys}


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
        # the members' stacked along dim 0. It is never called directly: ``forward`` runs it
        # through functional_call on one member's slices. Keeping the module tree means the
        # stacked parameters keep their qualified names and owning module types, so
        # checkpoints read naturally and the trainer's L2 split (embedding vs network) applies.
        self.stacked = copy.deepcopy(models[0])
        params, _ = stack_module_state(list(models))
        buffers = [_persistent_buffers(m) for m in models]
        stacked = {name: nn.Parameter(value.detach().clone()) for name, value in params.items()}
        stacked.update({name: torch.stack([b[name].detach() for b in buffers])
                        for name in buffers[0]})
        _replace_state(self.stacked, stacked)

    def _state(self) -> dict[str, torch.Tensor]:
        """The stacked parameters and persistent buffers by their architecture names."""
        return self.stacked.state_dict(keep_vars=True)

    def forward(self, batch: Batch) -> list[ModelOutput]:
        kind, _ = self.stacked.auxiliary()

        def run_one(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = functional_call(self.stacked, state, (batch,))
            tensors = {"logit": out.logit, "h": out.h}
            if out.aux_logits is not None:
                tensors["aux_logits"] = out.aux_logits
            return tensors

        stacked = vmap(run_one, randomness="different")(self._state())
        return [ModelOutput(**{k: v[i] for k, v in stacked.items()}, aux_loss=kind)
                for i in range(self.size)]

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights under the architecture's own names (a standalone model's
        ``state_dict``; the tensors are copies)."""
        return {name: t[index].detach().clone() for name, t in self._state().items()}

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
            target[index].copy_(state[name])

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
