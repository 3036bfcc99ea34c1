"""The study: Optuna's TPE sampler (seeded) and median pruner over run folders.

Layout of ``OUT``: ``tune.yaml`` (the resolved tune config), ``study.db`` (the SQLite study,
unless ``--storage`` names another), ``trials/NNNN/`` (one run folder per trial, loadable by
``evaluate``, ``predict`` and ``export``), ``best.yaml`` (the best trial's config, runnable
as ``mutualctr <method> --config``) and ``trials.png``.

Resuming: trials live in the storage, so re-running continues the study until ``trials``
trials are complete or pruned; finished ones are never re-run. A trial whose process died
stops sending heartbeats; once they are older than :data:`GRACE_S` the next trial start (on
any machine sharing the storage) marks it failed and queues it again with the same
parameters and the same folder, where the run resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

from mutualctr import files
from mutualctr.config import to_dict
from mutualctr.errors import ConfigError, MutualCTRError
from mutualctr.methods import get_method, runner
from mutualctr.runfolders.folder import load_run_yaml, read_history
from mutualctr.tuning.plot import plot_trials
from mutualctr.tuning.space import TuneConfig, check, trial_config

TUNE_FILE = "tune.yaml"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
BEST_FILE = "best.yaml"
PLOT_FILE = "trials.png"
STUDY_NAMES = frozenset({TUNE_FILE, STUDY_FILE, TRIALS_DIR, BEST_FILE, PLOT_FILE,
                         f"{STUDY_FILE}-journal"})
HEARTBEAT_S = 20
GRACE_S = 60


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ConfigError("mutualctr tune needs the optuna package: pip install optuna "
                          "(or pip install 'mutualctr[tune]')") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def prepare_folder(config: TuneConfig, out: Path, overwrite: bool) -> None:
    """Write ``OUT/tune.yaml``; a folder holding another study (``trials`` aside, which may
    grow) is refused unless ``overwrite``, which deletes that study's files. A folder holding
    anything a study did not write is refused: nothing of the user's is deleted."""
    path = out / TUNE_FILE
    new = to_dict(config)
    foreign = sorted(e.name for e in out.iterdir() if e.name not in STUDY_NAMES) \
        if out.is_dir() else []
    if foreign:
        raise ConfigError(f"{out} holds files a study did not write ({', '.join(foreign[:8])}"
                          f"{' ...' if len(foreign) > 8 else ''}); choose an empty or new --out")
    if path.is_file() and not overwrite:
        old = load_run_yaml(path)
        if {**old, "trials": None} != {**new, "trials": None}:
            raise ConfigError(f"{out} holds a study of another tune config ({path}); use "
                              "--overwrite to start over, or another --out")
    if overwrite and out.is_dir():
        for entry in out.iterdir():  # only the study's own files: ``foreign`` is empty
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    files.write_yaml(path, new)


def trial_folder(out: Path, folder: str) -> Path:
    """A trial's run folder, ``out / folder``, which must stay inside ``out/trials``: a study
    storage is shared and its user attributes may say anything."""
    path = (out / folder).resolve()
    if not path.is_relative_to((out / TRIALS_DIR).resolve()):
        raise ConfigError(f"the study names the trial folder {folder!r}, outside "
                          f"{out / TRIALS_DIR}; refusing to train there")
    return path


def open_study(config: TuneConfig, out: Path, storage: str | None, overwrite: bool) -> Any:
    """The study in ``storage`` (default: SQLite ``OUT/study.db``), created or loaded."""
    optuna = _optuna()
    url = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    rdb = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                     heartbeat_stale_trial_callback=retry)
    if overwrite and storage and config.study in optuna.study.get_all_study_names(rdb):
        optuna.delete_study(study_name=config.study, storage=rdb)
    study = optuna.create_study(
        study_name=config.study, storage=rdb, load_if_exists=True,
        direction=config.objective_metric.direction, pruner=optuna.pruners.MedianPruner(),
    )
    # A fresh study samples from ``seed``; a continued one from ``seed`` + its trials so far,
    # or its first new trials would repeat the first run's draws.
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))
    return study


class _Objective:
    """One trial: sample the space, train a run folder, report each epoch for pruning."""

    def __init__(self, config: TuneConfig, out: Path) -> None:
        self.config, self.out = config, out
        self.metric = config.objective_metric

    def __call__(self, trial: Any) -> float:
        optuna = _optuna()
        folder = trial.user_attrs.get("folder") or f"{TRIALS_DIR}/{trial.number:04d}"
        trial.set_user_attr("folder", folder)  # a retried trial inherits it
        values = {key: dim.suggest(trial, key) for key, dim in self.config.space.items()}

        def report(record: dict[str, Any]) -> None:
            trial.report(self.metric.value(record["valid"], record["best_epoch"]),
                         record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

        method = get_method(self.config.method)
        with open(os.devnull, "w") as quiet:  # the epochs' lines are in metrics.jsonl
            result = runner.run(method, trial_config(self.config, values),
                                trial_folder(self.out, folder), log=quiet, on_epoch=report)
        monitored = read_history(runner.final_folder(method, trial_folder(self.out, folder)))[
            -1]["best_epoch"]
        return self.metric.value(result.metrics["valid"], monitored)


def _finished(study: Any) -> list[Any]:
    states = _optuna().trial.TrialState
    return study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))


def _progress(config: TuneConfig, log: TextIO) -> Any:
    """The study callback printing one line per trial."""
    started = time.perf_counter()

    def show(study: Any, trial: Any) -> None:
        nonlocal started
        if trial.value is not None:
            outcome = f"{config.metric} {trial.value:.5f}"
        elif trial.state.name == "PRUNED":
            outcome = f"pruned after epoch {max(trial.intermediate_values, default=0)}"
        else:
            outcome = f"{trial.state.name.lower()}: {trial.system_attrs.get('fail_reason', '')}"
        best = study.best_trial if any(t.value is not None for t in _finished(study)) else None
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in trial.params.items())
        print(f"trial {len(_finished(study))}/{config.trials} ({trial.user_attrs.get('folder')}): "
              f"{outcome} | {shown}"
              + (f" | best {best.value:.5f} (trial {best.number})" if best else "")
              + f" | {time.perf_counter() - started:.0f} s", file=log, flush=True)
        started = time.perf_counter()

    return show


def tune(
    config: TuneConfig, out: Path, *, storage: str | None = None, overwrite: bool = False,
    log: TextIO | None = None,
) -> Any:
    """Run (or continue) the study of ``config`` in ``out``; write ``best.yaml`` and
    ``trials.png``. Returns the Optuna study."""
    log = log if log is not None else sys.stderr
    check(config)
    prepare_folder(config, out, overwrite)
    optuna = _optuna()
    study = open_study(config, out, storage, overwrite)
    remaining = config.trials - len(_finished(study))
    if remaining > 0:
        states = optuna.trial.TrialState
        stop = optuna.study.MaxTrialsCallback(config.trials, states=(states.COMPLETE,
                                                                     states.PRUNED))
        study.optimize(_Objective(config, out), n_trials=remaining, catch=(MutualCTRError,),
                       callbacks=[stop, _progress(config, log)])
    else:
        print(f"{out}: the study already has {config.trials} finished trials (raise `trials` "
              "to run more)", file=log)
    write_results(config, study, out, log)
    return study


def write_results(config: TuneConfig, study: Any, out: Path, log: TextIO) -> None:
    """``best.yaml`` (when a trial completed) and ``trials.png``."""
    finished = _finished(study)
    metric = config.objective_metric
    plot_trials(finished, config.metric, metric.direction == "maximize", out / PLOT_FILE)
    if not any(t.value is not None for t in finished):
        print("no trial completed: no best.yaml", file=log)
        return
    best = study.best_trial
    files.write_yaml(out / BEST_FILE, to_dict(trial_config(config, best.params)))
    print(f"best: trial {best.number} ({best.user_attrs.get('folder')}), {config.metric} "
          f"{best.value:.5f}; its config: {out / BEST_FILE}", file=log)
