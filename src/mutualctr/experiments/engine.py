"""The experiments' one engine: jobs, a plan that runs them, and one record per job.

A :class:`Job` is a method, its config, its run folder and its labels (where its result goes
in the report: the table, the row, the seed ...). :func:`run_plan` trains the jobs of a plan in
order, each through :func:`mutualctr.methods.runner.run` (which reuses a finished run of the
same config, so an interrupted experiment continues where it stopped), prints one progress line
per job, and writes each job's :class:`Record`, its labels and the metrics read from its run
folder, as ``record.json`` in that folder. Every report is built from records alone
(:func:`read_records`, :func:`load_records`), so it can be rebuilt from the run folders.

A plan is any iterable of jobs; a lazy one (a generator) lets later jobs depend on the results
of earlier ones (the Yilmaz experiment's RQ3 and RQ4 groups start from the pretrained runs with
the best validation AUC). An experiment that runs each configuration once per seed describes
the configurations as jobs without data or seed and expands them with :func:`seeded`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mutualctr import files
from mutualctr.config import to_dict
from mutualctr.methods import runner
from mutualctr.methods.base import Method
from mutualctr.runfolders.folder import RECORD_FILE
from mutualctr.training.config import TrainConfig
from mutualctr.training.trainer import Metrics

EXPERIMENT_CONFIG_FILE = "experiment.yaml"  # in the experiment folder: its resolved config


@dataclass(frozen=True)
class Job:
    """One run of an experiment.

    Attributes:
        method: what :func:`mutualctr.methods.runner.run` trains.
        config: the method's config.
        out: the run folder.
        labels: where the run goes in the report (JSON values: ``{"table": "scaling", "row":
            "dnn", "seed": 2024}``); they are the run's :class:`Record` labels.
        title: the progress line's description; empty: the labels.
    """

    method: Method[Any]
    config: Any
    out: Path
    labels: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""

    def describe(self) -> str:
        return self.title or ", ".join(f"{k} {v}" for k, v in self.labels.items())


@dataclass(frozen=True)
class Record:
    """A finished job: its labels and its metrics (``metrics.json``'s content of its run, plus
    what the plan's ``score`` added), stored as ``run/record.json``."""

    labels: dict[str, Any]
    run: Path
    metrics: Metrics


# (job, the run's metrics) -> the record's metrics: what a plan adds to metrics.json's content
Score = Callable[[Job, Metrics], Metrics]


def seeded(job: Job, seed: int, *, data: str, train: TrainConfig, root: Path,
           folder: str = "seed{seed}") -> Job:
    """The run of configuration ``job`` at ``seed``: its config with the experiment's ``data``
    and ``train`` (``train.seed = seed``), in ``root / job.out / folder`` (``job.out`` is
    relative to the experiment folder ``root``), labelled ``seed`` too."""
    config = dataclasses.replace(job.config, data=data,
                                 train=dataclasses.replace(train, seed=seed))
    out = root / job.out / folder.format(seed=seed)
    title = f"{job.title}, seed {seed}" if job.title else ""
    return dataclasses.replace(job, config=config, out=out, labels={**job.labels, "seed": seed},
                               title=title)


def run_job(job: Job, *, overwrite: bool = False, log: TextIO | None = None,
            score: Score | None = None) -> Record:
    """Train ``job`` (or reuse its finished run), then write and return its record."""
    result = runner.run(job.method, job.config, job.out, overwrite=overwrite, log=log)
    metrics = score(job, result.metrics) if score is not None else result.metrics
    record = Record(dict(job.labels), job.out, metrics)
    if result.primary:
        files.write_json(job.out / RECORD_FILE, {"labels": record.labels, "metrics": metrics})
    return record


def run_plan(
    jobs: Iterable[Job], *, total: int | None = None, overwrite: bool = False,
    log: TextIO | None = None, score: Score | None = None,
) -> list[Record]:
    """Run every job in order (see the module docstring) and return their records.

    Each job prints one line to ``log`` (standard error by default) before it starts:
    ``[i/total] <title> -> <folder> (ETA ...)``, or ``[i/total] <title>: done before, reusing
    <folder>`` when its run folder holds a finished run of its config. The ETA is the mean time
    of the jobs trained so far times the jobs left (from the second trained job on; jobs
    differ in size, so it is a rough one). ``total`` is the plan's length (needed when ``jobs``
    is a generator).
    """
    stream = log if log is not None else sys.stderr
    if total is None:
        total = len(jobs) if isinstance(jobs, Sequence) else None
    of = f"/{total}" if total is not None else ""
    records = []
    trained, spent = 0, 0.0
    for i, job in enumerate(jobs, start=1):
        header = f"[{i}{of}] {job.describe()}"
        if not overwrite and runner.is_done(job.method, job.config, job.out):
            print(f"{header}: done before, reusing {job.out}", file=stream, flush=True)
            records.append(run_job(job, overwrite=overwrite, log=log, score=score))
            continue
        left = "" if total is None or not trained else \
            f" (ETA {format_duration(spent / trained * (total - i + 1))})"
        print(f"{header} -> {job.out}{left}", file=stream, flush=True)
        start = time.perf_counter()
        records.append(run_job(job, overwrite=overwrite, log=log, score=score))
        trained, spent = trained + 1, spent + time.perf_counter() - start
    return records


def format_duration(seconds: float) -> str:
    """``75.0`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes \
        else f"{secs}s"


def read_record(folder: str | Path) -> Record | None:
    """The record in run folder ``folder``, or None before its job has finished."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return Record(stored["labels"], Path(folder), stored["metrics"])


def read_records(jobs: Iterable[Job]) -> list[Record]:
    """The records of the jobs that have finished, in the jobs' order."""
    return [r for r in (read_record(job.out) for job in jobs) if r is not None]


def load_records(root: str | Path) -> list[Record]:
    """Every record under the experiment folder ``root``, in path order."""
    return [r for r in (read_record(p.parent)
                        for p in sorted(Path(root).rglob(RECORD_FILE))) if r is not None]


def select(records: Iterable[Record], **labels: Any) -> list[Record]:
    """The records whose labels include all of ``labels``."""
    return [r for r in records if all(r.labels.get(k) == v for k, v in labels.items())]


def save_config(out: str | Path, config: Any) -> Path:
    """Write an experiment's resolved config as ``out/experiment.yaml`` (what ``--resume``
    reads back); returns its path."""
    path = Path(out) / EXPERIMENT_CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_yaml(path, to_dict(config))
    return path
