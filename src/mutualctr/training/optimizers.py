"""The trainer's optimizers: Adam over every parameter, or Adam with lazy embedding rows.

``train.optimizer: adam`` (the default) updates every parameter every step, embedding tables
included: the rows a batch did not look up still move, with their decaying moments and the L2
term. ``lazy_adam`` gives the embedding tables sparse gradients (the rows looked up, see
:func:`mutualctr.models.embedding.look_up_rows`) and updates only those rows, their moments and
their L2 term: the semantics of ``torch.optim.SparseAdam``, TensorFlow's ``LazyAdam`` and the
row-wise fused optimizers of TorchRec / FBGEMM. A step then costs the rows a batch touches, not
the table: with vocabularies of millions of rows, most of a dense step is Adam, zeroing and
scattering over rows the batch never saw (docs/benchmarks.md, "Lazy Adam"). The two are not
equivalent (an untouched row stands still under ``lazy_adam``), so the choice is the user's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam

from mutualctr.models.embedding import FeatureEmbedding, row_sparse_tensor
from mutualctr.training.config import TrainConfig


def is_embedding_parameter(name: str, module_types: dict[str, type]) -> bool:
    """Embedding parameters get ``embedding_l2``, all others ``net_l2``.

    A parameter is an embedding parameter when it belongs to an ``nn.Embedding`` /
    ``nn.EmbeddingBag`` or when a component of its qualified name starts with ``embedding``
    (the models' ``FeatureEmbedding`` is their ``embedding`` attribute; stacked groups keep the
    prefix).
    """
    owner = name.rpartition(".")[0]
    if module_types.get(owner) in (nn.Embedding, nn.EmbeddingBag):
        return True
    return any(part.startswith("embedding") for part in name.split("."))


class LazyAdam(torch.optim.Adam):
    """Adam whose parameters with a sparse gradient are updated only at the gradient's rows.

    Dense gradients take torch's fused Adam step. For a sparse (coalesced COO) gradient ``g``
    over rows ``r`` of parameter ``W``, with ``t`` the parameter's step count (global, as in
    ``SparseAdam``: it counts the steps in which the parameter had a gradient), the rows ``r``
    take exactly Adam's update (Kingma & Ba 2015, Algorithm 1, with coupled L2 as torch's
    ``weight_decay``)::

        g <- g + weight_decay * W[r]
        m[r] <- beta1 m[r] + (1 - beta1) g;    v[r] <- beta2 v[r] + (1 - beta2) g^2
        W[r] <- W[r] - lr / (1 - beta1^t) * m[r] / (sqrt(v[r]) / sqrt(1 - beta2^t) + eps)

    and every other row, its weights and moments stay as they were. The state keeps Adam's
    keys and shapes (``step``, ``exp_avg``, ``exp_avg_sq``), so a checkpoint of either
    optimizer loads into the other.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, fused=True)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        sparse = [(group, p) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        grads = [p.grad for _, p in sparse]
        for _, p in sparse:
            p.grad = None  # hidden from the fused step, which refuses sparse gradients
        try:
            loss = super().step(closure)
        finally:
            for (_, p), grad in zip(sparse, grads, strict=True):
                p.grad = grad
        for group, p in sparse:
            self._update_rows(p, p.grad.coalesce(), group)
        return loss

    def _update_rows(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        """Gather the gradient's rows of the weights and moments, take torch's fused Adam step
        on them (the same kernel as the dense parameters'), and write them back."""
        state = self.state[p]
        if not state:  # as the fused Adam initialises it
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        rows = grad.indices()[0]
        tensors = [p, state["exp_avg"], state["exp_avg_sq"]]
        weights, exp_avg, exp_avg_sq = (t.index_select(0, rows) for t in tensors)
        beta1, beta2 = group["betas"]
        adam(params=[weights], grads=[grad.values()], exp_avgs=[exp_avg],
             exp_avg_sqs=[exp_avg_sq], max_exp_avg_sqs=[], state_steps=[state["step"]],
             fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
             weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        for full, updated in zip(tensors, (weights, exp_avg, exp_avg_sq), strict=True):
            full.index_copy_(0, rows, updated)


def build_optimizer(modules: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer`` over ``modules``, with L2 ``lambda/2 * ||W||^2`` as Adam's
    ``weight_decay``: ``embedding_l2`` on embedding parameters, ``net_l2`` on the others.

    Adam's (coupled) weight decay adds ``lambda * W`` to the gradient, which is exactly the
    gradient of FuxiCTR's ``lambda/2 * ||W||^2`` regulariser, folded into the fused update at
    no extra cost (docs/training.md explains the choice over penalising looked-up rows; under
    ``lazy_adam`` the tables' term reaches only the looked-up rows). The fused (single-kernel)
    Adam step is used: on a 9M-row embedding table it took 13 ms against 44 ms for the
    per-tensor loop on 2 CPU cores, with the same update rule. ``lazy_adam`` switches the
    embeddings of ``modules`` to sparse gradients; ``adam`` switches them back.
    """
    lazy = config.optimizer == "lazy_adam"
    for module in modules.modules():
        if isinstance(module, FeatureEmbedding):
            module.sparse_gradients = lazy
    types = {name: type(m) for name, m in modules.named_modules()}
    emb, net = [], []
    for name, p in modules.named_parameters():
        if p.requires_grad:
            (emb if is_embedding_parameter(name, types) else net).append(p)
    groups = [
        {"params": emb, "weight_decay": config.embedding_l2},
        {"params": net, "weight_decay": config.net_l2},
    ]
    groups = [g for g in groups if g["params"]]
    if lazy:
        return LazyAdam(groups, lr=config.lr)
    return torch.optim.Adam(groups, lr=config.lr, fused=True)


def coalesce_gradients_(params: Iterable[torch.Tensor]) -> None:
    """Make the sparse gradients of ``params`` coalesced (each row once, in order). One that
    the lookup made has its rows in increasing order already (autograd's accumulation drops
    the flag that says so): it is only marked, which costs a comparison instead of the sort of
    ``coalesce``; a table looked up twice in one step has two lookups' rows, summed by
    ``coalesce``."""
    for p in params:
        grad = p.grad
        if grad is None or not grad.is_sparse or grad.is_coalesced():
            continue
        rows = grad._indices()
        if rows.shape[0] == 1 and bool((rows[0, 1:] > rows[0, :-1]).all()):
            p.grad = row_sparse_tensor(rows[0], grad._values(), grad.shape)
        else:
            p.grad = grad.coalesce()


def gradient_values(grads: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Each gradient's stored values: a (coalesced) sparse gradient's values, a dense gradient
    itself. Their norm is the gradients' norm, and scaling them in place scales the
    gradients."""
    return [g.values() if g.is_sparse else g for g in grads]


def clip_gradients_(params: Iterable[torch.Tensor], max_norm: float,
                    total_norm: torch.Tensor) -> None:
    """Scale the gradients of ``params`` by ``min(1, max_norm / (total_norm + 1e-6))``, as
    ``torch.nn.utils.clip_grads_with_norm_`` does, sparse gradients included."""
    scale = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
    for g in gradient_values(p.grad for p in params if p.grad is not None):
        g.mul_(scale)
