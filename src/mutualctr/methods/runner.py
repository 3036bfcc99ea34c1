"""The one runner: a method's config into a run folder, for every method and experiment.

:func:`run` resolves the config, reuses a finished run of the same config (unless
``overwrite``), otherwise opens and locks the run folder (rank 0 under ``torchrun``), seeds,
builds the method's group and objective, writes ``model.json`` (so ``evaluate``, ``predict``
and ``export`` load every run folder, whatever its method), trains with
:func:`mutualctr.training.trainer.fit` (resuming from the last checkpoint of an interrupted run)
and returns the metrics that ``metrics.json`` holds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO, TypeVar

from mutualctr.config import to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.distributed import ddp
from mutualctr.errors import ConfigError
from mutualctr.methods.base import Method
from mutualctr.runfolders.folder import METHOD_KEY, is_finished, open_run, read_metrics
from mutualctr.runfolders.restore import model_spec
from mutualctr.training import memory, users
from mutualctr.training.trainer import Metrics, OnEpoch, fit, resolve_device, seed_everything

C = TypeVar("C")


@dataclass
class RunResult:
    """What :func:`run` returns.

    Attributes:
        metrics: ``metrics.json``'s content (keyed by prediction name, plus the method's keys).
        reused: the run folder already held a finished run of this config; nothing was trained.
        primary: this process writes files and prints (rank 0, or the only process).
    """

    metrics: Metrics
    reused: bool = False
    primary: bool = True


def stored_config(method: Method[C], config: C) -> dict[str, Any]:
    """``config.yaml``'s content: the method's name, then its resolved config."""
    return {METHOD_KEY: method.name, **to_dict(config)}


def is_done(method: Method[C], config: C, out: str | Path) -> bool:
    """Whether ``out`` holds a finished run of ``method`` with exactly ``config`` (every stage
    of a staged method)."""
    config = method.resolve(config)
    if not method.stages:
        return is_finished(out, stored_config(method, config))
    return all(is_finished(Path(out) / stage.name,
                           {METHOD_KEY: method.stage_name(stage), **to_dict(config)})
               for stage in method.stages)


def run(
    method: Method[C], config: C, out: str | Path, *, overwrite: bool = False,
    log: TextIO | None = None, on_epoch: OnEpoch | None = None,
) -> RunResult:
    """Train ``method`` with ``config`` into the run folder ``out`` (see the module docstring);
    ``log`` and ``on_epoch`` go to :func:`~mutualctr.training.trainer.fit`. A method made of
    stages trains each into ``out/<stage>`` (finished ones reused; ``on_epoch`` sees the last
    stage's epochs, those of the model it delivers) and returns its combined metrics.

    Raises:
        ConfigError: the config names no data.
        RunFolderError: ``out`` is in use, not writable, or holds a run of another config
            (without ``overwrite``).
    """
    if not method.stages:
        return _run_one(method, config, out, overwrite=overwrite, log=log, on_epoch=on_epoch)
    folders: dict[str, Path] = {}
    results: dict[str, RunResult] = {}
    for stage in method.stages:
        folders[stage.name] = Path(out) / stage.name
        step = Method(method.stage_name(stage), method.config_class,
                      partial(stage.build, folders=dict(folders)), method.resolve)
        last = stage is method.stages[-1]
        results[stage.name] = _run_one(step, config, folders[stage.name], overwrite=overwrite,
                                       log=log, on_epoch=on_epoch if last else None)
    assert method.combine is not None  # a staged method has one (Method.__post_init__)
    last = results[method.stages[-1].name]
    return RunResult(method.combine({k: r.metrics for k, r in results.items()}),
                     reused=all(r.reused for r in results.values()), primary=last.primary)


def final_folder(method: Method[C], out: str | Path) -> Path:
    """The run folder of what ``method`` delivers in ``out``: ``out`` itself, or a staged
    method's last stage (KD-DAGFM's finetuned student)."""
    return Path(out) / method.stages[-1].name if method.stages else Path(out)


def config_folder(method: Method[C], out: str | Path) -> tuple[Path, str]:
    """Where ``out``'s stored config of ``method`` is (its first stage's folder for a staged
    method) and the method name stored there."""
    if method.stages:
        first = method.stages[0]
        return Path(out) / first.name, method.stage_name(first)
    return Path(out), method.name


def _run_one(
    method: Method[C], config: C, out: str | Path, *, overwrite: bool,
    log: TextIO | None, on_epoch: OnEpoch | None,
) -> RunResult:
    build = method.build
    assert build is not None  # a method without stages builds (Method.__post_init__)
    config = method.resolve(config)
    stored = stored_config(method, config)
    if not overwrite and is_finished(out, stored):
        return RunResult(read_metrics(out), reused=True)
    data, train = stored["data"], config.train  # type: ignore[attr-defined]
    if not data:
        raise ConfigError("no data: give --data DIR (or `data:` in the config file)")
    store = EncodedStore.open(data)
    user_column = users.user_column(store, train.user_field)  # gAUC's groups, if any
    dist = ddp.init(resolve_device(train.device))
    try:
        # before the run folder is touched: a run that cannot fit leaves nothing behind
        line = memory.check_fits(memory.estimate_build(build, config, store),
                                 memory.available_bytes())
        if dist.is_main:
            print(f"memory: {line}", file=log if log is not None else sys.stderr)
        folder = open_run(out, stored, overwrite=overwrite, dist=dist,
                          device=resolve_device(train.device, dist))
        try:
            seed_everything(train.seed)
            built = build(config, store)
            if folder is not None:
                folder.write_model_spec(model_spec(built.names, built.models, built.objective,
                                                   built.objective_params, store.feature_map))
            finalize = None if method.finalize is None else method.finalize(config, store, built)
            test = store.split("test") if "test" in store.split_names else None
            result = fit(built.group, built.objective, store.split("train"),
                         store.split("valid"), train, folder, test, dist, log, finalize,
                         on_epoch, user_column)
        finally:
            if folder is not None:
                folder.close()
    finally:
        ddp.shutdown(dist)
    return RunResult(result.metrics, primary=dist.is_main)
