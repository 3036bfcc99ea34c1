"""Data-parallel training across processes (``torchrun --nproc_per_node=K -m mutualctr train``).

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init` joins the process group
(gloo on CPU, NCCL on CUDA). Training batches are sharded by the loader (global batch ``j`` goes
to rank ``j % K``) and gradients averaged by DDP. Evaluation splits the rows into K contiguous
slices, one per rank, and :func:`gather` concatenates the predictions in rank order, so metrics
are computed on every row exactly once (exact AUC, not an average of per-rank AUCs) and the
predictions keep the split's row order. Only rank 0 writes files.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import get_total_norm

from mutualctr.data.store import SplitArrays
from mutualctr.distributed import sharding
from mutualctr.training.optimizers import gradient_values


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store(world_size)
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, world_size=world_size,
                                    rank=int(os.environ["RANK"]))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def _attempt_store(world_size: int) -> dist.Store | None:
    """torchrun's own key-value store, under a prefix naming this restart of the worker group.

    The workers of every restart share the agent's store: without a prefix a restarted rank
    can read the address a killed rank published in an earlier attempt and hang connecting to
    it. ``None`` outside torchrun's agent store (the default ``env://`` initialisation).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          world_size, is_master=False)
    return dist.PrefixStore(f"attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}",
                            store)


def shutdown(info: DistInfo) -> None:
    """Leave the process group once every rank is done with it: without the barrier a rank
    that tears its gloo connections down while a peer still sends can make that peer's
    transport thread abort the process at exit ("terminate called without an active
    exception") after the work itself has finished."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_without_teardown(code: int) -> NoReturn:
    """End a finished torchrun process (files written, the process group left) without the
    interpreter's teardown, where gloo's transport threads can abort the process during C++
    static destruction ("terminate called without an active exception") under load."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def row_slice(split: SplitArrays, info: DistInfo) -> SplitArrays:
    """This rank's contiguous share of the rows (all rows when not distributed)."""
    if not info.enabled:
        return split
    n = len(split)
    lo, hi = n * info.rank // info.world_size, n * (info.rank + 1) // info.world_size
    return split.map(lambda a: a[lo:hi])


def gather(values: np.ndarray, info: DistInfo, device: torch.device) -> np.ndarray:
    """Concatenate every rank's 1-d ``values`` in rank order (padding to equal size, trimmed)."""
    if not info.enabled:
        return values
    local = torch.tensor(values, device=device)  # a copy: values may be a read-only memmap
    size = torch.tensor([local.numel()], device=device)
    sizes = [torch.zeros_like(size) for _ in range(info.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=local.dtype, device=device)
    padded[: local.numel()] = local
    parts = [torch.zeros_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)]).cpu().numpy()


def summed(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``values`` added up over every rank (``values`` itself when not distributed)."""
    if not info.enabled:
        return values
    total = values.clone()
    dist.all_reduce(total)
    return total


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (a list of one when not distributed)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts them only at the start of each forward, so after an epoch's last step every
    rank holds statistics updated by its own batch: evaluation, which splits the rows across
    ranks, would score each slice with another model, and none of them is the one rank 0 saves.
    """
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (keeps ranks stopping together)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def parallelize(module: nn.Module, tables: str, info: DistInfo, device: torch.device) -> nn.Module:
    """The module a training step calls: ``module`` itself in a single process, DDP over the
    processes, or with ``tables`` (``train.sharding``: ``table_wise`` / ``row_wise``) its
    embedding tables sharded by TorchRec and the rest under DDP (see
    :mod:`mutualctr.distributed.sharding`; ``module`` is changed in place)."""
    if not info.enabled:
        return module
    if tables == "none":
        return DistributedDataParallel(module)
    return sharding.shard(module, tables, device)


def with_sharded_state(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer``, whose ``state_dict`` (then called on every rank) keeps the moments of
    sharded tables per process (:func:`.sharding.keep_sharded_optimizer_state`);
    unchanged when nothing is sharded."""
    return sharding.keep_sharded_optimizer_state(optimizer)


def grad_norm(params: list[torch.Tensor], info: DistInfo) -> torch.Tensor:
    """The L2 norm of the gradients of ``params`` over the whole model.

    Replicated parameters have the same (averaged) gradient on every rank; a sharded table's
    gradient is split between the ranks, so the squares of their parts are summed over them.
    Every rank gets the same norm, hence the same clipping. Without sharded tables it is the
    norm of the local gradients, as before.
    """
    shards = [p.grad for p in params if sharding.is_sharded(p)]
    replicated = gradient_values(p.grad for p in params if not sharding.is_sharded(p))
    norm = get_total_norm(replicated, foreach=True)
    if not info.enabled or not shards:
        return norm
    squares = get_total_norm(shards, foreach=True).square()
    dist.all_reduce(squares)
    return (norm.square() + squares).sqrt()


def eval_batch_size(rows: int, batch_size: int, info: DistInfo) -> int:
    """``batch_size``, or the next size up that gives every rank's :func:`row_slice` of
    ``rows`` rows the same number of batches.

    The slices hold ``q = rows // K`` or ``q + 1`` rows; when ``q`` is a multiple of the batch
    size the longer slices would need one batch more. A sharded table is looked up by all
    ranks together, so they must run the same number of batches.
    """
    short = rows // info.world_size
    size = batch_size
    while info.enabled and short and rows % info.world_size and short % size == 0:
        size += 1
    return size
