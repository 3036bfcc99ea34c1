"""`train.tracking`: TensorBoard event files mirror metrics.jsonl, a failing tracker never
loses the run, a missing package is a config error naming the pip command."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from mutualctr.cli import main
from mutualctr.training.tracking import TrackingWarning, epoch_scalars
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


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow installed")
def test_mlflow_without_the_package_is_a_config_error_naming_the_install_command(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "--data", str(store), "--out", str(tmp_path / "run"), "--model",
                 "dnn", "--set", "train.tracking=mlflow", *SMALL]) == 2
    assert "pip install mlflow" in capsys.readouterr().err
