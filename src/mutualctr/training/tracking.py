"""Experiment tracking (``train.tracking``): TensorBoard event files or MLflow, as a view of the
run folder.

The run folder (``metrics.jsonl``, ``metrics.json``) stays the source of truth; a tracker only
mirrors scalars to a viewer. So a tracker that fails while logging (a full disk under
``RUN/tensorboard/``, an unreachable MLflow server) warns once and is switched off, and the run
goes on. A backend whose package is missing is a :class:`~mutualctr.errors.ConfigError` at the
start of training, naming the pip command.

Scalars, all at the global optimiser step:

* every epoch, the numbers of that epoch's ``metrics.jsonl`` record (:func:`epoch_scalars`):
  ``train_loss``, ``lr``, ``rows_per_second``, ``seconds``, ``valid/<prediction>/auc`` and
  ``.../logloss``, ``best_epoch/<name>``;
* every ``train.log_every_steps`` steps (:func:`step_scalars`): ``step/loss`` (the batch's),
  ``step/lr``, ``step/rows_per_second`` and the objective's named parts as ``step/<part>``
  (the loss terms, EKTF's ``lambda/<student>`` and ``mu/<student>/<peer>``, CETNet's
  ``fusion_weight/<member>``, mutual learning's ``bce/<member>`` and ``mutual/<member>``).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mutualctr.errors import ConfigError
from mutualctr.runfolders.folder import RunFolder

INSTALL = {"tensorboard": "pip install tensorboard (or pip install 'mutualctr[tracking]')",
           "mlflow": "pip install mlflow"}


class TrackingWarning(UserWarning):
    """A tracker failed; the run continues without it."""


class Tracker(Protocol):
    """What the trainer calls: scalars by tag at a global step, then close."""

    def log(self, scalars: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class NullTracker:
    """``train.tracking: none``, in-memory runs and DDP ranks other than 0."""

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


def _require(backend: str) -> Any:
    """The backend's package, imported now; missing, a ConfigError naming the pip command."""
    try:
        return importlib.import_module(backend)
    except ImportError as err:
        raise ConfigError(f"train.tracking: {backend} needs the {backend} package: "
                          f"{INSTALL[backend]}") from err


def _warn(backend: str, err: Exception) -> None:
    warnings.warn(f"{backend} tracking failed ({type(err).__name__}: {err}); training goes on "
                  "without it (the run folder has every metric)", TrackingWarning, stacklevel=4)


class TensorBoardTracker:
    """Event files under ``RUN/tensorboard/``. ``start_step``: the step training resumes at;
    events an interrupted attempt logged from there on are purged, so a resumed run shows one
    curve."""

    def __init__(self, folder: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=start_step or None)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class MlflowTracker:
    """One MLflow run per training process, named as the run folder, wherever MLflow's own
    settings (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``) point."""

    def __init__(self, mlflow: Any, name: str) -> None:
        self.mlflow = mlflow
        mlflow.start_run(run_name=name)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics(dict(scalars), step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class Guarded:
    """Forwards to ``tracker`` until it raises; then warns once and drops it."""

    def __init__(self, tracker: Tracker, backend: str) -> None:
        self.tracker: Tracker = tracker
        self.backend = backend

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.tracker, method)(*args)
        except Exception as err:  # a view failing must not stop the run
            _warn(self.backend, err)
            self.tracker = NullTracker()

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self._call("log", scalars, step)

    def close(self) -> None:
        self._call("close")


def open_tracker(backend: str, run: RunFolder | None, start_step: int = 0) -> Tracker:
    """The tracker ``train.tracking`` names, for the run folder ``run`` (``None``: nothing is
    tracked). A missing package raises ConfigError; a backend that fails to start warns and
    tracks nothing."""
    if backend == "none" or run is None:
        return NullTracker()
    module = _require(backend)
    try:
        tracker: Tracker = (TensorBoardTracker(run.tracking_dir, start_step)
                            if backend == "tensorboard" else MlflowTracker(module, run.root.name))
    except Exception as err:  # a view failing must not stop the run
        _warn(backend, err)
        return NullTracker()
    return Guarded(tracker, backend)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested mappings as ``a/b/c`` tags (bools and strings left out)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{tag}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[tag] = float(value)
    return out


def epoch_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` record's numbers, less its position (``epoch``, ``global_step``)."""
    return flatten({k: v for k, v in record.items() if k not in ("epoch", "global_step")})


def step_scalars(loss: float, lr: float, rows_per_second: float,
                 parts: Mapping[str, Any]) -> dict[str, float]:
    """What is logged every ``log_every_steps`` steps; ``parts``: the objective's (0-d
    tensors or floats)."""
    scalars = {"loss": loss, "lr": lr, "rows_per_second": rows_per_second}
    scalars.update({name: float(value) for name, value in parts.items()})
    return {f"step/{name}": value for name, value in scalars.items()}
