"""The experiments' engine: a plan's jobs run in order through the runner, one progress line
per job, finished runs reused, one record per job (labels and metrics) read back from the run
folders, configurations expanded over seeds, the experiment's config saved; and the registry
of experiments."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from mutualctr.errors import ConfigError
from mutualctr.experiments import experiment_names, get_experiment
from mutualctr.experiments.engine import (
    EXPERIMENT_CONFIG_FILE,
    RECORD_FILE,
    Job,
    load_records,
    read_record,
    read_records,
    run_plan,
    save_config,
    seeded,
    select,
)
from mutualctr.methods import train as train_method
from mutualctr.training.config import TrainConfig
from training_support import write_store

TRAIN = TrainConfig(epochs=1, batch_size=200, num_threads=1, log_every_steps=1000)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("engine") / "data",
                       {"train": 400, "valid": 200, "test": 200})


def configuration(model: str) -> Job:
    """A model alone, as an experiment's configuration (no data, no seed, a relative folder)."""
    config = train_method.IndependentConfig(model=model, model_config={"embedding_dim": 4})
    return Job(train_method.METHOD, config, Path("runs") / model, {"row": model}, model)


def test_seeded_sets_the_data_the_seed_and_the_folder(tmp_path: Path) -> None:
    job = seeded(configuration("lr"), 7, data="/store", train=TRAIN, root=tmp_path,
                 folder="seed_{seed}")
    assert (job.config.data, job.config.train.seed, job.config.train.epochs) == ("/store", 7, 1)
    assert job.out == tmp_path / "runs" / "lr" / "seed_7"
    assert job.labels == {"row": "lr", "seed": 7} and job.describe() == "lr, seed 7"
    assert Job(train_method.METHOD, job.config, tmp_path, {"a": 1, "b": "x"}).describe() == \
        "a 1, b x"


def test_a_plan_runs_in_order_writes_records_and_reuses_finished_runs(
    store: Path, tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    jobs = [seeded(configuration(model), seed, data=str(store), train=TRAIN, root=tmp_path)
            for model in ("lr", "fm") for seed in (1, 2)]
    log = io.StringIO()
    records = run_plan(iter(jobs), total=len(jobs), log=log)
    progress = [line for line in log.getvalue().splitlines() if line.startswith("[")]
    # from the second trained job on, the mean time so far times the jobs left
    assert [re.sub(r" \(ETA [0-9hms]+\)$", "", line) for line in progress] == [
        f"[{i}/4] {job.describe()} -> {job.out}" for i, job in enumerate(jobs, start=1)]
    assert "ETA" not in progress[0] and all(" (ETA " in line for line in progress[1:])
    assert [r.labels for r in records] == [j.labels for j in jobs]
    for job, record in zip(jobs, records, strict=True):
        metrics = json.loads((job.out / "metrics.json").read_text())
        assert record.metrics == metrics and record.run == job.out
        stored = json.loads((job.out / RECORD_FILE).read_text())
        assert stored == {"labels": dict(job.labels), "metrics": metrics}
        assert read_record(job.out) == record
    # the same plan again: every run is reused, nothing is trained
    stamp = (jobs[0].out / "model.pt").stat().st_mtime_ns
    again = io.StringIO()
    assert run_plan(jobs, log=again) == records
    assert again.getvalue().splitlines() == [f"[{i}/4] {job.describe()}: done before, reusing "
                                             f"{job.out}" for i, job in enumerate(jobs, 1)]
    assert (jobs[0].out / "model.pt").stat().st_mtime_ns == stamp
    # the records, read back from the run folders
    assert read_records(jobs) == records
    assert load_records(tmp_path) == sorted(records, key=lambda r: str(r.run))
    assert [r.labels["seed"] for r in select(records, row="fm")] == [1, 2]
    assert select(records, row="fm", seed=2) == [records[3]]


def test_score_adds_to_the_records_metrics(store: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    job = seeded(configuration("lr"), 1, data=str(store), train=TRAIN, root=tmp_path)

    def score(done: Job, metrics: dict) -> dict:
        return {**metrics, "rows": done.labels["row"]}

    (record,) = run_plan([job], score=score, log=io.StringIO())
    assert record.metrics["rows"] == "lr" and read_record(job.out) == record
    assert read_record(tmp_path / "nowhere") is None
    assert read_records([job, seeded(configuration("fm"), 1, data=str(store), train=TRAIN,
                                     root=tmp_path)]) == [record]


def test_save_config_writes_the_experiment_yaml(tmp_path: Path) -> None:
    path = save_config(tmp_path / "exp", TRAIN)
    assert path == tmp_path / "exp" / EXPERIMENT_CONFIG_FILE
    assert yaml.safe_load(path.read_text())["batch_size"] == 200


def test_the_registry_finds_every_experiment() -> None:
    assert experiment_names() == ["cetnet", "ektf", "yilmaz"]
    yilmaz = get_experiment("yilmaz")
    assert yilmaz.name == "yilmaz" and yilmaz.keys.startswith("data, models, seeds")
    assert get_experiment("cetnet").report_only and not yilmaz.report_only
    with pytest.raises(ConfigError, match="did you mean 'ektf'"):
        get_experiment("ektd")
