"""A group of N models of one architecture run as one batched model.

The members' parameters are stacked along a new leading dimension (``torch.func.
stack_module_state``) and held as real ``nn.Parameter``s of shape ``[N, ...]``, so optimizers,
``state_dict`` checkpoints and gradient clipping see ordinary parameters. ``forward`` runs one
template copy of the architecture with ``torch.func.functional_call`` under ``torch.func.vmap``
over the stacked dimension: the N members' matrix products become batched matmuls and their
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


def _key(name: str) -> str:
    """Parameter names may not contain dots: ``head.bias`` -> ``head__bias``."""
    return name.replace(".", "__")


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


class BatchedModelGroup(nn.Module):
    """N models of one architecture as stacked parameters; ``forward(batch) -> list[ModelOutput]``.

    Args:
        models: the members; they must share class and shapes (see :func:`can_batch`). Their
            current weights become the group's initial weights; the modules themselves are not
            kept.
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
        params, _ = stack_module_state(list(models))
        self._param_names = list(params)
        for name, value in params.items():
            self.register_parameter(_key(name), nn.Parameter(value.detach().clone()))
        buffers = [_persistent_buffers(m) for m in models]
        self._buffer_names = list(buffers[0])
        for name in self._buffer_names:
            self.register_buffer(_key(name), torch.stack([b[name].detach() for b in buffers]))
        # The template runs every member's computation; its own parameters are replaced by the
        # stacked ones in functional_call, so they are moved to the meta device (no memory).
        # Hidden from nn.Module's registry (a plain list) so it is not a submodule.
        template = copy.deepcopy(models[0])
        for module in template.modules():
            for pname, p in list(module._parameters.items()):
                if p is not None:
                    module._parameters[pname] = nn.Parameter(p.detach().to("meta"))
        self._template: list[CTRModel] = [template]

    @property
    def template(self) -> CTRModel:
        return self._template[0]

    def _stacked(self) -> dict[str, torch.Tensor]:
        tensors = {name: getattr(self, _key(name)) for name in self._param_names}
        tensors.update({name: getattr(self, _key(name)) for name in self._buffer_names})
        return tensors

    def forward(self, batch: Batch) -> list[ModelOutput]:
        template = self.template
        template.train(self.training)

        def run_one(state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            out = functional_call(template, state, (batch,))
            return out.logit, out.h

        logits, hs = vmap(run_one, randomness="different")(self._stacked())
        return [ModelOutput(logit=logits[i], h=hs[i]) for i in range(self.size)]

    def member_state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Member ``index``'s weights under the architecture's own names (a standalone model's
        ``state_dict``; the tensors are copies)."""
        return {name: t[index].detach().clone() for name, t in self._stacked().items()}

    @torch.no_grad()
    def load_member_state_dict(self, index: int, state: dict[str, torch.Tensor]) -> None:
        """Copy a standalone model's ``state_dict`` into member ``index`` (strict on names)."""
        expected = set(self._param_names) | set(self._buffer_names)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ConfigError(
                f"member state does not fit the architecture: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for name, target in self._stacked().items():
            target[index].copy_(state[name])

    def unstack(self) -> list[CTRModel]:
        """The members as standalone models (copies of the template with their own weights)."""
        members = []
        for i in range(self.size):
            model = copy.deepcopy(self.template)
            model.load_state_dict(self.member_state_dict(i), assign=True)
            members.append(model)
        return members
