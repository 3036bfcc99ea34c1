"""Checkpoint files: written atomically, read without unpickling arbitrary objects.

A checkpoint is a nested dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)``: PyTorch's restricted
unpickler, which refuses every global outside a small allow-list of tensor types, so a crafted
file cannot run code (tests/test_resume.py::test_crafted_checkpoint_cannot_run_code).

Writing goes through :mod:`mutualctr.files` (a temporary file in the same folder, fsync'ed, then
renamed over the target): a crash or a full disk mid-write leaves the previous checkpoint as the
latest, never a half-written one.

A run keeps several checkpoints (:class:`CheckpointDir`): the newest ``keep`` and the best, each
recorded with its size and sha256 in ``manifest.json`` (written atomically after the checkpoint
itself). Resuming verifies them newest first and falls back past a damaged one (truncated by a
copy, a full disk outside our writes, bit rot), naming it.
"""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutualctr import files
from mutualctr.errors import MutualCTRError


class CheckpointError(MutualCTRError):
    """A checkpoint cannot be written or read."""


def tensor_bytes(state: Any) -> int:
    """The bytes of every tensor in a nested state: about the size ``torch.save`` writes."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(tensor_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(tensor_bytes(v) for v in state)
    return 0


def save_atomic(state: dict[str, Any], path: Path) -> files.DigestWriter:
    """``torch.save`` to ``path`` through :func:`mutualctr.files.atomic_path`.

    Returns the writer, whose ``size`` and ``sha256`` describe the bytes written.
    """
    try:
        with files.atomic_path(path, tensor_bytes(state)) as tmp, open(tmp, "wb") as raw:
            handle = files.DigestWriter(raw)
            try:
                torch.save(state, handle)
            except RuntimeError as err:
                if handle.error is None:
                    raise
                raise handle.error from err  # the OSError torch.save hid
    except files.FileWriteError as err:
        raise CheckpointError(f"checkpoint: {err}") from err
    return handle


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


MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
LEGACY_FILES = ("last.pt", "last.json")  # a run folder's one checkpoint before the manifest


@dataclass
class Restored:
    """The newest intact checkpoint: its state, its file, a line per damaged newer one and
    what else the run should say (a manifest rebuilt from the files)."""

    state: dict[str, Any]
    path: Path
    damaged: list[str]
    notes: list[str] = field(default_factory=list)


class CheckpointDir:
    """A run's checkpoint folder: ``step-<global step>.pt`` files and ``manifest.json``.

    The manifest lists the kept checkpoints oldest first (file, epoch, step_in_epoch,
    global_step, bytes, sha256) and names the best one. It is rewritten after every checkpoint,
    so a crash between the two leaves the new file unlisted (and removed by the next save).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.notes: list[str] = []  # what rebuilding the manifest found, said once on resume

    def _manifest(self) -> dict[str, Any]:
        """The manifest; a missing one (with checkpoint files beside it) or an unreadable one
        is rebuilt from the files that load (:meth:`_rebuilt`)."""
        path = self.folder / MANIFEST_FILE
        if not path.is_file():
            if any(self.folder.glob("step-*.pt")):
                return self._rebuilt("is missing")
            return {"format": MANIFEST_FORMAT, "checkpoints": [], "best": None}
        try:
            manifest = json.loads(path.read_text())
            entries = manifest["checkpoints"]
            if not all({"file", "global_step", "bytes", "sha256"} <= set(e) for e in entries):
                raise KeyError("an entry lacks a field")
        except (ValueError, KeyError, TypeError) as err:
            return self._rebuilt(f"is unreadable ({err})")
        if manifest.get("format") != MANIFEST_FORMAT:
            raise CheckpointError(f"{path}: manifest format {manifest.get('format')} is not "
                                  f"{MANIFEST_FORMAT}")
        return manifest

    def _rebuilt(self, why: str) -> dict[str, Any]:
        """A manifest of the ``step-*.pt`` files that load, oldest first, each recorded as it
        is now (its size and sha256); the files that do not load are left where they are."""
        entries, unloadable = [], []
        for path in sorted(self.folder.glob("step-*.pt")):
            try:
                state = load(path)
                where = {k: int(state[k]) for k in ("epoch", "step_in_epoch", "global_step")}
            except (CheckpointError, KeyError, TypeError, ValueError):
                unloadable.append(path.name)
                continue
            entries.append({"file": path.name, **where, "bytes": path.stat().st_size,
                            "sha256": files.sha256(path)})
        entries.sort(key=lambda e: e["global_step"])
        note = (f"{self.folder / MANIFEST_FILE} {why}: rebuilt from the {len(entries)} "
                "checkpoint file(s) that load")
        if unloadable:
            note += f"; left alone, not loading: {', '.join(unloadable)}"
        self.notes = [note]
        return {"format": MANIFEST_FORMAT, "checkpoints": entries, "best": None}

    def latest(self) -> Path | None:
        """The newest recorded checkpoint (not verified), or ``None``."""
        entries = self._manifest()["checkpoints"]
        return self.folder / entries[-1]["file"] if entries else None

    def save(self, state: dict[str, Any], where: dict[str, int], *, best: bool, keep: int) -> None:
        """Write ``state`` as the newest checkpoint; keep the newest ``keep`` and the best.

        A checkpoint supersedes any recorded at or after its step (those of a run resumed from
        an older checkpoint). If the manifest cannot be written the new file is removed: the
        previous checkpoints and manifest stay as they were.
        """
        manifest = self._manifest()
        listed = {e["file"] for e in manifest["checkpoints"]}
        name = f"step-{where['global_step']:09d}.pt"
        written = save_atomic(state, self.folder / name)
        entries = [e for e in manifest["checkpoints"] if e["global_step"] < where["global_step"]]
        entries.append({"file": name, **where, "bytes": written.size, "sha256": written.sha256})
        best_file = name if best else manifest["best"]
        kept = [e for i, e in enumerate(entries)
                if i >= len(entries) - keep or e["file"] == best_file]
        if best_file not in {e["file"] for e in kept}:
            best_file = None
        try:
            files.write_json(self.folder / MANIFEST_FILE, {
                "format": MANIFEST_FORMAT, "checkpoints": kept, "best": best_file,
            })
        except files.FileWriteError as err:
            (self.folder / name).unlink(missing_ok=True)
            raise CheckpointError(f"checkpoint manifest: {err}") from err
        self._prune(listed | {name}, {e["file"] for e in kept})

    def _prune(self, listed: set[str], kept: set[str]) -> None:
        """Remove the checkpoints the manifest listed (or this save wrote) that are no longer
        kept, the temporary files of killed writers and a checkpoint of the earlier layout. A
        ``step-*.pt`` no valid manifest ever listed is left alone: mutualctr cannot prove it
        is one of its own to throw away."""
        legacy = [self.folder / name for name in LEGACY_FILES]
        ours = [self.folder / name for name in listed - kept]
        for path in [*ours, *self.folder.glob(".step-*.tmp.pt"), *legacy]:
            path.unlink(missing_ok=True)

    def load_newest_intact(self) -> Restored | None:
        """Verify the recorded checkpoints newest first and load the first intact one.

        ``None`` when none is recorded; :class:`CheckpointError` when every one is damaged. A
        folder of the earlier layout (one ``last.pt``, no manifest) resumes from that file,
        unverified: no checksum was recorded.
        """
        entries = self._manifest()["checkpoints"]
        legacy = self.folder / LEGACY_FILES[0]
        if not entries and legacy.is_file():
            return Restored(load(legacy), legacy, [])
        damaged = []
        for entry in reversed(entries):
            path = self.folder / entry["file"]
            problem = _damage(path, entry)
            if problem is None:
                return Restored(load(path), path, damaged, self.notes)
            damaged.append(f"checkpoint {path} is damaged ({problem})")
        if damaged:
            raise CheckpointError("; ".join(damaged) + ": no intact checkpoint to resume from; "
                                  "use --overwrite to start over")
        return None


def _damage(path: Path, entry: dict[str, Any]) -> str | None:
    """What is wrong with a recorded checkpoint file, or ``None`` if it is intact."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"{size} bytes, {entry['bytes']} recorded"
    if files.sha256(path) != entry["sha256"]:
        return "sha256 differs from the recorded one"
    return None
