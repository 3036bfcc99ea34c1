"""`train.tracking`: TensorBoard event files and a real MLflow run (SQLite store) mirror
metrics.jsonl, a run crashed after a checkpoint and resumed continues the same curves and
MLflow run without a duplicated step, a failing tracker never loses the run, a missing package
is a config error naming the pip command."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from mutualctr.cli import main
from mutualctr.runfolders.folder import read_config
from mutualctr.training import tracking
from mutualctr.training.tracking import MLFLOW_ARTEFACTS, TrackingWarning, epoch_scalars
from test_resume import _kill_mid_epoch
from training_support import write_store

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--set", "train.batch_size=100", "--set", "train.num_threads=1",
         "--set", "train.log_every_steps=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("tracking") / "data",
                       {"train": 400, "valid": 200, "test": 100})


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_scalars_equal_metrics_jsonl_and_show_ektfs_weights(
    store: Path, tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    assert main(["ektf", "--data", str(store), "--out", str(run), "--k", "2", "--hidden", "8",
                 "--embedding-dim", "4", "--epochs", "2", "--set", "train.tracking=tensorboard",
                 "--set", "train.early_stopping.patience=2", *SMALL]) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    history = _history(run)
    assert len(history) == 2
    for record in history:
        for tag, value in epoch_scalars(record).items():
            logged = {e.step: e.value for e in events.Scalars(tag)}
            assert logged[record["global_step"]] == pytest.approx(value, rel=1e-6), tag
    tags = set(events.Tags()["scalars"])
    assert {"valid/teacher/auc", "train_loss", "lr", "rows_per_second"} <= tags
    students = [name for name in history[0]["valid"] if name != "teacher"]
    a, b = students
    assert {"step/loss", "step/lr", f"step/lambda/{a}", f"step/mu/{a}/{b}",
            f"step/mu/{b}/{a}"} <= tags
    assert [e.step for e in events.Scalars("step/loss")] == [2, 4, 6, 8]


def test_a_failing_tracker_warns_and_the_run_finishes(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    run = tmp_path / "run"
    argv = ["train", "--data", str(store), "--out", str(run), "--model", "dnn", *SMALL]
    with pytest.warns(TrackingWarning, match="No space left"):
        assert main([*argv, "--set", "train.tracking=tensorboard"]) == 0
    assert (run / "metrics.json").is_file() and len(_history(run)) == 1
    capsys.readouterr()
    assert main(argv) == 0  # tracking is a view: another value reuses the finished run
    assert "already finished" in capsys.readouterr().err


def test_mlflow_without_the_package_is_a_config_error_naming_the_install_command(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` finds uninstalled
    assert main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "--model",
                 "dnn", "--set", "train.tracking=mlflow", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "pip install mlflow-skinny sqlalchemy alembic" in err
    assert "mutualctr[tracking]" in err


# Two epochs of 4 steps (400 training rows, batches of 100), every step's scalars logged.
STEPS = [1, 2, 3, 4, 5, 6, 7, 8]


def _two_epochs(store: Path, run: Path, backend: str, checkpoint_every: int = 0) -> list[str]:
    return ["train", "--data", str(store), "--out", str(run), "--model", "dnn", "--epochs", "2",
            "--set", f"train.tracking={backend}", "--set", "train.batch_size=100",
            "--set", "train.num_threads=1", "--set", "train.log_every_steps=1",
            "--set", "train.early_stopping.patience=2",
            "--set", f"train.checkpoint_every_steps={checkpoint_every}"]


@pytest.fixture(scope="module")
def mlflow_database(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    """A local MLflow tracking store in SQLite, its tables made once for the module. Made in
    its own folder: MLflow keeps the store it opens first for a URI, with the artefact root
    (``./mlruns``) resolved from the current directory then."""
    root = tmp_path_factory.mktemp("mlflow")
    here = Path.cwd()
    os.chdir(root)
    try:
        client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
        client.search_experiments()
    finally:
        os.chdir(here)
    return client


@pytest.fixture()
def mlflow_store(mlflow_database: MlflowClient, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """``mlflow_database`` through MLflow's own settings, as users set them, with an
    experiment per test; artefacts go to MLflow's default, ``./mlruns``, beside the store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_database.tracking_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    monkeypatch.chdir(Path(mlflow_database.tracking_uri.removeprefix("sqlite:///")).parent)
    return mlflow_database


def _only_run(client: MlflowClient) -> object:
    """The one MLflow run of this test's experiment."""
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def _assert_mlflow_mirrors_the_run_folder(client: MlflowClient, mlflow_run: object,
                                          run: Path, tmp_path: Path,
                                          steps: list[int] = STEPS) -> None:
    """Each epoch's scalars at its global step with metrics.jsonl's values, every step's loss
    once, and the run folder's small files as artefacts."""
    run_id = mlflow_run.info.run_id
    history = _history(run)
    for tag in epoch_scalars(history[0]):
        logged = [(m.step, m.value) for m in client.get_metric_history(run_id, tag)]
        assert logged == [(r["global_step"], pytest.approx(epoch_scalars(r)[tag], rel=1e-12))
                          for r in history], tag
    assert [m.step for m in client.get_metric_history(run_id, "step/loss")] == steps
    assert sorted(a.path for a in client.list_artifacts(run_id)) == sorted(MLFLOW_ARTEFACTS)
    for name in MLFLOW_ARTEFACTS:
        copy = Path(client.download_artifacts(run_id, name, str(tmp_path)))
        assert copy.read_bytes() == (run / name).read_bytes(), name


def test_mlflow_run_holds_the_resolved_config_each_epochs_metrics_and_the_run_files(
    store: Path, tmp_path: Path, mlflow_store: MlflowClient,
) -> None:
    run = tmp_path / "run"
    assert main(_two_epochs(store, run, "mlflow")) == 0
    mlflow_run = _only_run(mlflow_store)
    assert mlflow_run.info.run_name == "run" and mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.tags["mutualctr.run_folder"] == str(run.resolve())
    params = mlflow_run.data.params
    assert {key: params[key] for key in ("method", "model", "train.epochs", "train.lr",
                                         "train.batch_size", "model_config.hidden_units",
                                         "train.early_stopping.restore_best")} == {
        "method": "train", "model": "dnn", "train.epochs": "2", "train.lr": "0.001",
        "train.batch_size": "100", "model_config.hidden_units": "[400, 400, 400]",
        "train.early_stopping.restore_best": "true"}
    assert params == tracking.config_params(read_config(run))
    _assert_mlflow_mirrors_the_run_folder(mlflow_store, mlflow_run, run, tmp_path / "copies")


class _CrashedError(Exception):
    """Stands for a process killed in the middle of training."""


def _crash_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Training dies at global step ``step`` (``log_every_steps`` 1), before it is logged."""
    real, calls = tracking.step_scalars, []

    def crashing(*args: object) -> dict[str, float]:
        calls.append(step)
        if len(calls) == step:
            raise _CrashedError
        return real(*args)

    monkeypatch.setattr(tracking, "step_scalars", crashing)


def _crash_in_epoch_2(argv: list[str]) -> None:
    """``argv`` runs until it dies at step 7, after its newest checkpoint."""
    with pytest.MonkeyPatch.context() as patch:
        _crash_at_step(patch, 7)
        with pytest.raises(_CrashedError):
            main(argv)


# Where the crashed run resumes: the checkpoint ending epoch 1 (step 4), or a step checkpoint
# (train.checkpoint_every_steps 5); the crashed attempt had logged steps 5 and 6, or 6, after it.
RESUMED_AT = {"epoch_checkpoint": 0, "step_checkpoint": 5}


@pytest.mark.parametrize("checkpoint_every", RESUMED_AT.values(), ids=RESUMED_AT.keys())
def test_a_crashed_run_resumed_continues_its_mlflow_run_without_logging_a_step_twice(
    checkpoint_every: int, store: Path, tmp_path: Path, mlflow_store: MlflowClient,
) -> None:
    run, argv = tmp_path / "run", _two_epochs(store, tmp_path / "run", "mlflow", checkpoint_every)
    _crash_in_epoch_2(argv)
    crashed = _only_run(mlflow_store)
    assert crashed.info.status == "FAILED"
    assert [m.step for m in mlflow_store.get_metric_history(crashed.info.run_id,
                                                            "step/loss")] == STEPS[:6]
    assert main(argv) == 0  # resumes from the newest checkpoint
    resumed = _only_run(mlflow_store)
    assert resumed.info.run_id == crashed.info.run_id
    assert resumed.info.status == "FINISHED"
    _assert_mlflow_mirrors_the_run_folder(mlflow_store, resumed, run, tmp_path / "copies")


@pytest.mark.slow
def test_a_killed_run_resumed_continues_its_mlflow_run(
    store: Path, tmp_path: Path, mlflow_store: MlflowClient,
) -> None:
    """SIGKILLed (no handler runs: its MLflow run stays RUNNING) once a step checkpoint of
    epoch 2 exists, then run again: the same MLflow run, each of the 80 steps logged once."""
    run = tmp_path / "run"
    argv = [*_two_epochs(store, run, "mlflow", checkpoint_every=20), "--set",
            "train.batch_size=10"]
    _kill_mid_epoch([sys.executable, "-m", "mutualctr", *argv], run, epoch=1)
    killed = _only_run(mlflow_store)
    assert killed.info.status == "RUNNING"
    assert main(argv) == 0
    resumed = _only_run(mlflow_store)
    assert (resumed.info.run_id, resumed.info.status) == (killed.info.run_id, "FINISHED")
    _assert_mlflow_mirrors_the_run_folder(mlflow_store, resumed, run, tmp_path / "copies",
                                          steps=list(range(1, 81)))


def _next_second() -> None:
    """Event files are read in name order, which starts with the second they were opened in: a
    resumed process opens its file seconds after the killed one did, an in-process resume
    waits for the next second to do the same."""
    time.sleep(1 - time.time() % 1)


@pytest.mark.parametrize("checkpoint_every", RESUMED_AT.values(), ids=RESUMED_AT.keys())
def test_a_crashed_run_resumed_shows_one_tensorboard_point_per_step(
    checkpoint_every: int, store: Path, tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    argv = _two_epochs(store, run, "tensorboard", checkpoint_every)
    _crash_in_epoch_2(argv)
    _next_second()
    assert main(argv) == 0  # resumes from the newest checkpoint
    assert len(list((run / "tensorboard").iterdir())) == 2  # the crashed attempt's and its own
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    for tag in events.Tags()["scalars"]:
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
    assert [e.step for e in events.Scalars("step/loss")] == STEPS
    history = _history(run)
    for tag in epoch_scalars(history[0]):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(r["global_step"], pytest.approx(epoch_scalars(r)[tag], rel=1e-6))
                          for r in history], tag
