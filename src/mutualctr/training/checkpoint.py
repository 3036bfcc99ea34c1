"""Checkpoint files: written atomically, read without unpickling arbitrary objects.

A checkpoint is a nested dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)``: PyTorch's restricted
unpickler, which refuses every global outside a small allow-list of tensor types, so a crafted
file cannot run code (tests/test_resume.py::test_crafted_checkpoint_cannot_run_code).

Writing goes through :mod:`mutualctr.files` (a temporary file in the same folder, fsync'ed, then
renamed over the target): a crash or a full disk mid-write leaves the previous checkpoint as the
latest, never a half-written one.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutualctr import files
from mutualctr.errors import MutualCTRError


class CheckpointError(MutualCTRError):
    """A checkpoint cannot be written or read."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` through :func:`mutualctr.files.atomic_path`."""
    try:
        with files.atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)
    except files.FileWriteError as err:
        raise CheckpointError(f"checkpoint: {err}") from err


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with the weights-only unpickler onto the CPU."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain "
            f"containers ({err})"
        ) from err
    except (OSError, RuntimeError, EOFError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err


def rng_state() -> dict[str, Any]:
    """The random states of python, numpy and torch (CPU and every CUDA device) as plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((
        "MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
        np_state["has_gauss"], np_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
