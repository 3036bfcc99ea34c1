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

A resumed run continues its view: TensorBoard hides the events an interrupted attempt wrote
after the checkpoint it resumes from, and MLflow reattaches to the run folder's MLflow run and
skips the steps that run already holds, so each curve has one point per step.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mutualctr.errors import ConfigError
from mutualctr.runfolders.folder import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_SPEC_FILE,
    RunFolder,
    read_config,
)

INSTALL = {"tensorboard": "pip install tensorboard (or pip install 'mutualctr[tracking]')",
           "mlflow": "pip install mlflow-skinny sqlalchemy alembic (or pip install "
                     "'mutualctr[tracking]'; or the full mlflow)"}
# The run folder's files an MLflow run gets as artefacts when training finishes: the small ones
# that say what ran and how it went; weights, predictions and checkpoints stay in the folder.
MLFLOW_ARTEFACTS = (CONFIG_FILE, MODEL_SPEC_FILE, HISTORY_FILE, METRICS_FILE)
FOLDER_TAG = "mutualctr.run_folder"  # the run folder's absolute path, for people
FOLDER_KEY_TAG = "mutualctr.run_folder_key"  # its sha256, for searches (no quoting needed)


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


def _require(backend: str) -> None:
    """Import the backend's package now; missing, a ConfigError naming the pip command."""
    try:
        importlib.import_module(backend)
    except ImportError as err:
        raise ConfigError(f"train.tracking: {backend} needs the {backend} package: "
                          f"{INSTALL[backend]}") from err


def _warn(backend: str, err: Exception) -> None:
    warnings.warn(f"{backend} tracking failed ({type(err).__name__}: {err}); training goes on "
                  "without it (the run folder has every metric)", TrackingWarning, stacklevel=4)


class TensorBoardTracker:
    """Event files under ``RUN/tensorboard/``. ``start_step``: the step training resumes at.
    Events an interrupted attempt logged after it are purged (TensorBoard's ``purge_step``
    hides the earlier files' events at or after the step it is given), so a resumed run shows
    one curve; those at ``start_step`` itself (its epoch's scalars, logged before the
    checkpoint) are kept, as they are not logged again."""

    def __init__(self, folder: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=start_step + 1)

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class MlflowTracker:
    """One MLflow run per run folder, in the experiment MLflow's settings name
    (``MLFLOW_TRACKING_URI``; ``MLFLOW_EXPERIMENT_ID`` or ``MLFLOW_EXPERIMENT_NAME``, else the
    default experiment), named as the folder and tagged with its absolute path.

    A fresh run (``start_step`` 0) starts a new MLflow run with the resolved config as params.
    A resumed one reattaches to the newest MLflow run tagged with its folder and skips the
    scalars at steps that run already holds for the tag (what the interrupted attempt logged
    after its checkpoint), so no step is logged twice. Closing logs the run folder's
    :data:`MLFLOW_ARTEFACTS` if training finished (``metrics.json`` written) and ends the run
    ``FINISHED``, else ``FAILED`` (stopped by an error); a killed process leaves it ``RUNNING``
    until the run is resumed. Uses an ``MlflowClient`` of its own, so a caller's active
    MLflow run is left alone."""

    def __init__(self, run: RunFolder, start_step: int) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = MlflowClient()
        self.folder = run
        path = str(run.root.resolve())
        key = hashlib.sha256(path.encode()).hexdigest()
        experiment_id = self._experiment_id()
        found = self._newest_run(experiment_id, key) if start_step > 0 else None
        if found is None:
            found = self.client.create_run(experiment_id, run_name=run.root.name,
                                           tags={FOLDER_TAG: path, FOLDER_KEY_TAG: key})
        else:
            self.client.update_run(found.info.run_id, status="RUNNING")
        self.run_id: str = found.info.run_id
        self.logged_until = {tag: max(m.step for m in self.client.get_metric_history(
            self.run_id, tag)) for tag in found.data.metrics}
        params = {k: v for k, v in config_params(read_config(run.root)).items()
                  if k not in found.data.params}
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def _experiment_id(self) -> str:
        from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME
        from mlflow.tracking.default_experiment import DEFAULT_EXPERIMENT_ID

        if MLFLOW_EXPERIMENT_ID.get():
            return str(MLFLOW_EXPERIMENT_ID.get())
        name = MLFLOW_EXPERIMENT_NAME.get()
        if not name:
            return DEFAULT_EXPERIMENT_ID
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def _newest_run(self, experiment_id: str, key: str) -> Any:
        """The MLflow run most recently started for the run folder whose key is ``key``."""
        runs = self.client.search_runs([experiment_id], f"tags.`{FOLDER_KEY_TAG}` = '{key}'",
                                       max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0] if runs else None

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, step)
                   for tag, value in scalars.items() if step > self.logged_until.get(tag, -1)]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        finished = (self.folder.root / METRICS_FILE).is_file()
        if finished:
            for name in MLFLOW_ARTEFACTS:
                if (self.folder.root / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.folder.root / name))
        self.client.set_terminated(self.run_id, "FINISHED" if finished else "FAILED")


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
    _require(backend)
    try:
        tracker: Tracker = (TensorBoardTracker(run.tracking_dir, start_step)
                            if backend == "tensorboard" else MlflowTracker(run, start_step))
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


def config_params(config: Mapping[str, Any] | Sequence[Any], prefix: str = "") -> dict[str, str]:
    """A resolved config's leaves as MLflow params keyed by their ``--set`` path
    (``train.lr``); lists of mappings (``students``) are entered by index (``students.0.model``),
    other lists and non-string values are JSON (``[400, 400]``, ``true``)."""
    items = config.items() if isinstance(config, Mapping) else enumerate(config)
    out: dict[str, str] = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) or (
                isinstance(value, list) and any(isinstance(v, Mapping) for v in value)):
            out.update(config_params(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
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
