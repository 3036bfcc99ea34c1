"""What a run's parameters will take in memory, known before any weight is allocated.

Criteo-size vocabularies make embedding tables of millions of rows, and a group multiplies
them; a table that does not fit should stop the run with the figure it needs, not end in the
kernel's out-of-memory kill minutes into building it. The method's ``build`` runs once on
PyTorch's ``meta`` device (shapes without storage, so it costs nothing whatever the size),
and each parameter is charged its float32 weight, gradient and Adam's two moments; frozen
ones (KD-DAGFM's teacher) only their weight. Activations depend on the batch size and are not
counted: the estimate is a lower bound of the run's peak.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mutualctr.errors import MutualCTRError

FLOAT32 = 4
TRAINED_COPIES = 4  # weight, gradient, Adam's first and second moments
GIB = 1024**3


class InsufficientMemoryError(MutualCTRError):
    """The run's parameters and optimizer state need more memory than is available."""


@dataclass(frozen=True)
class MemoryEstimate:
    trained: int  # parameters the optimizer updates
    frozen: int  # parameters that only take part in forward passes

    @property
    def bytes(self) -> int:
        return FLOAT32 * (TRAINED_COPIES * self.trained + self.frozen)

    def describe(self) -> str:
        return (f"{self.trained + self.frozen:,} parameters need {self.bytes / GIB:.2f} GiB "
                "for weights, gradients and Adam's moments (activations not counted)")


def estimate(*modules: nn.Module) -> MemoryEstimate:
    """The parameters of ``modules`` (each counted once, even when shared)."""
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for p in module.parameters():
            seen.setdefault(id(p), p)
    trained = sum(p.numel() for p in seen.values() if p.requires_grad)
    frozen = sum(p.numel() for p in seen.values() if not p.requires_grad)
    return MemoryEstimate(trained, frozen)


def estimate_build(build: Any, *args: Any) -> MemoryEstimate:
    """:func:`estimate` of ``build(*args)``'s group and objective, built on the meta device."""
    with torch.device("meta"), warnings.catch_warnings():
        # a pretrained member's weights load into meta tensors as a no-op, which torch notes
        warnings.filterwarnings("ignore", "for .*: copying from a non-meta parameter")
        built = build(*args)
    return estimate(built.group, built.objective)


def available_bytes() -> int | None:
    """Memory this process may still use: the smaller of the kernel's available memory and the
    cgroup's limit less its usage; None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(needed: MemoryEstimate, available: int | None) -> str:
    """The line to print before training; raises when ``needed`` exceeds ``available``."""
    line = needed.describe()
    if available is None:
        return line
    if needed.bytes > available:
        raise InsufficientMemoryError(
            f"the run does not fit in memory: its {line}, and {available / GIB:.2f} GiB are "
            "available. Shrink the tables (a higher `--min-count` or hashing fields into fewer "
            "buckets at `data prepare`, a smaller embedding_dim), train fewer members, or shard "
            "the tables across processes (docs/training.md)")
    return f"{line}, of {available / GIB:.2f} GiB available"
