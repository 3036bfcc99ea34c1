"""The run folder: everything a training run leaves behind, and the guards around it.

Layout::

    RUN/config.yaml             resolved config (every default written out)
    RUN/model.json              members (name, registry model, resolved hyperparameters),
                                objective, feature map: enough to rebuild without pickle
    RUN/model.pt                final weights (best epoch restored), weights-only
    RUN/checkpoints/step-N.pt   checkpoints (every epoch, and every K steps), named by
                                global step: the newest ``train.keep_checkpoints`` and the
                                best epoch's
    RUN/checkpoints/manifest.json  each kept checkpoint's epoch, step, size and sha256, oldest
                                first, and the best one's name (see runfolders/checkpoint.py)
    RUN/metrics.jsonl           one line per finished epoch
    RUN/metrics.json            {"valid": {prediction: {"auc", "logloss", ...}}, "test": ...}
                                of the restored best weights, always keyed by prediction
                                name, plus what the method adds (e.g. mutual's "relaimp")
    RUN/test_predictions.npz    label and every named prediction on the test split
    RUN/.lock                   held (flock) by the process training in the folder

Guards: the folder must be writable (checked before training), one process at a time (an
``flock`` on ``.lock``; the kernel releases it when the holder dies, so a stale lock from a
killed job is taken over), and a folder made with a different config is refused unless
``overwrite``.

Every file is written through :mod:`mutualctr.files` (temporary file, fsync, atomic rename), and
only by the methods of :class:`RunFolder`: the names and formats live here alone, but for the
checkpoint folder's (:class:`~mutualctr.runfolders.checkpoint.CheckpointDir`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutualctr import files
from mutualctr.config import load_yaml
from mutualctr.distributed.ddp import DistInfo, any_rank
from mutualctr.errors import ConfigError, MutualCTRError
from mutualctr.runfolders import checkpoint
from mutualctr.training.config import TrainConfig

CONFIG_FILE = "config.yaml"
METHOD_KEY = "method"  # config.yaml's key naming the method that made the run
MODEL_SPEC_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "metrics.jsonl"
PREDICTIONS_FILE = "test_predictions.npz"
LOCK_FILE = ".lock"


# Settings added after run folders were made: a config.yaml without one was made with what is
# now its default, so it is read with that default and its runs stay reusable and resumable.
ADDED_SETTINGS = {"train": {"keep_checkpoints": TrainConfig.keep_checkpoints,
                            "tracking": TrainConfig.tracking,
                            "max_seconds": TrainConfig.max_seconds,
                            "user_field": TrainConfig.user_field}}
# Model settings added since, in every model config a run's config holds (members' included)
MODEL_CONFIG_KEY = "model_config"
ADDED_MODEL_SETTINGS: dict[str, Any] = {"exclude_fields": []}
# Settings that change how a run is watched, not what it computes: a folder made with another
# value holds the same run (resumed or reused as it is), and config.yaml keeps the latest value.
VIEW_SETTINGS = {"train": ("tracking",)}
# Methods stored under another name before: a folder made by one is read under its new name.
RENAMED_METHODS = {"independent": "train"}
TRACKING_DIR = "tensorboard"  # TensorBoard event files (training/tracking.py)
EXPORT_DIR = "export"  # mutualctr export's default files (serving/export.py)
RECORD_FILE = "record.json"  # an experiment's labels and metrics of the run (experiments/engine)
# What mutualctr writes in a run folder: the only entries it deletes or overwrites (with the
# temporary names of its atomic writes, `.<stem>.<pid>.tmp<suffix>`, and the writability probe)
OWN_NAMES = frozenset({CONFIG_FILE, MODEL_SPEC_FILE, WEIGHTS_FILE, METRICS_FILE, HISTORY_FILE,
                       PREDICTIONS_FILE, LOCK_FILE, "checkpoints", TRACKING_DIR, EXPORT_DIR,
                       RECORD_FILE})


def foreign_entries(root: Path) -> list[str]:
    """The entries of ``root`` that mutualctr did not write (see :data:`OWN_NAMES`), sorted."""
    if not root.is_dir():
        return []
    return sorted(e.name for e in root.iterdir() if not _is_own(e.name))


def _listed(names: list[str], most: int = 8) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _is_own(name: str) -> bool:
    return name in OWN_NAMES or (name.startswith(".") and ".tmp" in name) or \
        name.startswith(".probe")


def load_run_yaml(path: Path) -> dict[str, Any]:
    """A YAML file mutualctr wrote into a run or study folder; one that does not safe-load
    (edited by hand, damaged, a Python tag planted in it) is a ConfigError saying so."""
    try:
        return load_yaml(path)
    except ConfigError as err:
        raise ConfigError(f"{err}\nThis folder's {path.name} was edited or damaged: restore it, "
                          "or start again with --overwrite") from None


def _stored_config(path: Path) -> dict[str, Any]:
    """``config.yaml`` with the settings added since it was written, at their defaults, and
    its method under its current name."""
    config = load_run_yaml(path)
    if isinstance(config, dict) and config.get(METHOD_KEY) in RENAMED_METHODS:
        config[METHOD_KEY] = RENAMED_METHODS[config[METHOD_KEY]]
    return _with_added_settings(config)


def _with_added_settings(config: Any) -> Any:
    """``config`` with the :data:`ADDED_SETTINGS` it lacks, at their defaults, and every
    ``model_config`` (the run's own or a member's) with the :data:`ADDED_MODEL_SETTINGS`."""
    if not isinstance(config, dict):
        return config
    config = _with_added_model_settings(config)
    for section, added in ADDED_SETTINGS.items():
        if isinstance(config.get(section), dict):
            config[section] = {**added, **config[section]}
    return config


def _with_added_model_settings(value: Any) -> Any:
    if isinstance(value, list):
        return [_with_added_model_settings(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _with_added_model_settings(item) for key, item in value.items()}
    if isinstance(out.get(MODEL_CONFIG_KEY), dict):
        out[MODEL_CONFIG_KEY] = {**ADDED_MODEL_SETTINGS, **out[MODEL_CONFIG_KEY]}
    return out


def _comparable(config: Any) -> Any:
    """``config`` without its :data:`VIEW_SETTINGS` and with the :data:`ADDED_SETTINGS` it
    lacks, for comparing two runs' configs."""
    if not isinstance(config, dict):
        return config
    out = _with_added_settings(config)
    for section, keys in VIEW_SETTINGS.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


class RunFolderError(MutualCTRError):
    """The run folder cannot be used (busy, made with another config, not writable)."""


def _config_diff(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        diffs = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            diffs += _config_diff(old.get(key, "<unset>"), new.get(key, "<unset>"), sub)
        return diffs
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


class RunFolder:
    """A run folder, locked while open. Use :meth:`open` (or ``with RunFolder.open(...)``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = checkpoint.CheckpointDir(root / "checkpoints")
        self._lock_handle: Any = None

    @classmethod
    def open(
        cls, root: str | Path, config: dict[str, Any], *, overwrite: bool = False,
    ) -> RunFolder:
        """Create or reuse ``root`` for a run of ``config`` (the resolved config as a dict).

        An existing folder with the same config is reused (training resumes from its last
        checkpoint); with a different config it is refused, unless ``overwrite`` (then the
        files of its previous run are deleted). A folder holding anything mutualctr did not
        write is refused when it is not a run folder, or with ``overwrite``: nothing of the
        user's is ever deleted or written into.
        """
        run = cls(Path(root))
        run._check_writable()
        run._lock()
        try:
            run._check_config(config, overwrite)
        except BaseException:
            run.close()
            raise
        return run

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe"):
                pass
        except OSError as err:
            raise RunFolderError(
                f"output folder {self.root} is not writable: {err.strerror or err}"
            ) from err

    def _lock(self) -> None:
        handle = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderError(
                f"run folder {self.root} is in use by process {holder}; wait for it to finish "
                "or choose another --out"
            ) from err
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def _check_config(self, config: dict[str, Any], overwrite: bool) -> None:
        path = self.root / CONFIG_FILE
        foreign = foreign_entries(self.root)
        if foreign and path.exists() and overwrite:
            raise RunFolderError(
                f"--overwrite refused: {self.root} holds files mutualctr did not write "
                f"({_listed(foreign)}); it deletes only its own run's files: move them, or "
                "choose another --out")
        if foreign and not path.exists():
            raise RunFolderError(
                f"{self.root} is not a run folder and is not empty ({_listed(foreign)}); "
                "mutualctr writes a run only into a new or empty folder or its own run "
                "folder: choose another --out")
        if path.exists():
            old = _stored_config(path)
            diffs = _config_diff(_comparable(old), _comparable(config))
            if diffs and not overwrite:
                raise RunFolderError(
                    f"run folder {self.root} was made with a different config ("
                    + "; ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else "")
                    + "); use --overwrite to start over in it, or another --out"
                )
            if overwrite:
                self._clear()
        elif overwrite:
            self._clear()
        self.checkpoints.folder.mkdir(exist_ok=True)
        files.write_yaml(path, config)

    def _clear(self) -> None:
        """Delete the previous run's files (only mutualctr's own: ``_check_config`` refused a
        folder holding anything else), the lock aside."""
        for entry in self.root.iterdir():
            if entry.name == LOCK_FILE or not _is_own(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def close(self) -> None:
        """Release the lock."""
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- contents ---------------------------------------------------------------------------

    @property
    def tracking_dir(self) -> Path:
        """Where TensorBoard's event files go (written by its own writer, not through
        :mod:`mutualctr.files`: they are a view of ``metrics.jsonl``, not part of the run)."""
        return self.root / TRACKING_DIR

    def write_model_spec(self, spec: dict[str, Any]) -> None:
        files.write_json(self.root / MODEL_SPEC_FILE, spec)

    def write_weights(self, weights: dict[str, Any]) -> None:
        checkpoint.save_atomic(weights, self.root / WEIGHTS_FILE)

    def write_checkpoint(
        self, state: dict[str, Any], where: dict[str, int], *, best: bool, keep: int,
    ) -> None:
        """The training state at ``where`` (epoch, step_in_epoch, global_step); ``best``: it
        ends the best epoch so far; ``keep``: how many of the newest checkpoints to keep."""
        self.checkpoints.save(state, where, best=best, keep=keep)

    def write_history(self, records: list[dict[str, Any]]) -> None:
        """``metrics.jsonl``: one JSON line per finished epoch."""
        files.write_text(self.root / HISTORY_FILE, "".join(json.dumps(r) + "\n" for r in records))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        files.write_json(self.root / METRICS_FILE, metrics)

    def write_predictions(self, labels: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
        """``test_predictions.npz``: ``label`` and ``pred_<name>`` per named prediction."""
        needed = labels.nbytes + sum(p.nbytes for p in predictions.values())
        with files.atomic_path(self.root / PREDICTIONS_FILE, needed) as tmp:
            np.savez(tmp, label=labels, **{f"pred_{n}": p for n, p in predictions.items()})


def read_model_spec(root: str | Path) -> dict[str, Any]:
    """``model.json`` of a finished run (members, objective, feature map)."""
    path = Path(root) / MODEL_SPEC_FILE
    if not path.is_file():
        raise RunFolderError(f"{root} is not a finished run folder (no {MODEL_SPEC_FILE})")
    return json.loads(path.read_text())


def read_weights(root: str | Path) -> dict[str, Any]:
    """Final weights of a run: ``{"members": {name: state_dict}, "objective": state_dict}``.

    Use it to initialise models from a pretrained run (mutual learning as finetuning)::

        weights = read_weights("runs/deepfm")["members"]["deepfm"]
        model.load_state_dict(weights)
    """
    path = Path(root) / WEIGHTS_FILE
    if not path.is_file():
        raise RunFolderError(f"{root} has no trained weights ({WEIGHTS_FILE}); did it finish?")
    return checkpoint.load(path)


def read_config(root: str | Path) -> dict[str, Any]:
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderError(f"{root} is not a run folder (no {CONFIG_FILE})")
    return _stored_config(path)


def read_metrics(root: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a finished run: ``{"valid": {prediction: {...}}, "test": ...}``."""
    path = Path(root) / METRICS_FILE
    if not path.is_file():
        raise RunFolderError(f"{root} is not a finished run folder (no {METRICS_FILE})")
    return json.loads(path.read_text())


def read_history(root: str | Path) -> list[dict[str, Any]]:
    """``metrics.jsonl``: the finished epochs' records, oldest first (none yet: empty)."""
    path = Path(root) / HISTORY_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def is_finished(root: str | Path, config: dict[str, Any]) -> bool:
    """Whether ``root`` holds a finished run of exactly ``config`` (its metrics and weights)."""
    root = Path(root)
    if not all((root / name).is_file() for name in (CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE)):
        return False
    return _comparable(_stored_config(root / CONFIG_FILE)) == _comparable(config)


def open_run(
    root: str | Path, config: dict[str, Any], *, overwrite: bool, dist: DistInfo,
    device: torch.device,
) -> RunFolder | None:
    """Rank 0 opens (and locks) the run folder, other ranks get ``None``; a failure on rank 0
    is raised on every rank, so no process is left waiting for the others."""
    run, error = None, None
    if dist.is_main:
        try:
            run = RunFolder.open(root, config, overwrite=overwrite)
        except MutualCTRError as err:
            error = err
    if any_rank(error is not None, dist, device):
        raise error or RunFolderError(f"rank 0 could not open the run folder {root}")
    return run
