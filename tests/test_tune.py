"""`mutualctr tune`: a study of run folders that resumes, and a best config that runs as is."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from mutualctr.cli import main
from mutualctr.runfolders.folder import read_metrics
from training_support import write_store

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = {
    "train.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "train.embedding_l2": {"type": "categorical", "choices": [0, 1e-6, 1e-5]},
    "model_config.embedding_dim": {"type": "int", "low": 2, "high": 6, "step": 2},
}


def _tune_file(path: Path, space: dict) -> Path:
    config = {
        "method": "train",
        "base": {"model": "dnn", "model_config": {"hidden_units": [8]},
                 "train": {"batch_size": 100, "num_threads": 1, "log_every_steps": 1000}},
        "metric": "valid auc",
        "trials": 3,
        "space": space,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("tune") / "data",
                       {"train": 400, "valid": 200, "test": 100})


def test_a_study_finishes_resumes_without_new_trials_and_its_best_config_runs(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "study"
    argv = ["tune", "--config", str(_tune_file(tmp_path / "tune.yaml", SPACE)),
            "--data", str(store), "--out", str(out), "--epochs", "1"]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3 and lines[-1].startswith("trial 3/3 (trials/0002): valid auc ")
    folders = sorted((out / "trials").iterdir())
    assert [f.name for f in folders] == ["0000", "0001", "0002"]
    for folder in folders:  # normal run folders
        assert main(["evaluate", str(folder), "--splits", "valid"]) == 0
        evaluated = json.loads(capsys.readouterr().out)
        assert evaluated["valid"]["dnn"]["auc"] == pytest.approx(
            read_metrics(folder)["valid"]["dnn"]["auc"], abs=1e-9)
    assert (out / "trials.png").stat().st_size > 0

    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'study.db'}")
    best = study.best_trial
    rerun = tmp_path / "best-run"
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(rerun)]) == 0
    assert read_metrics(rerun)["valid"]["dnn"]["auc"] == pytest.approx(best.value, abs=1e-9)

    capsys.readouterr()
    assert main(argv) == 0  # the study is done: nothing runs again
    assert "already has 3 finished trials" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="tune",
                                 storage=f"sqlite:///{out / 'study.db'}").trials) == 3


def test_an_invalid_space_key_is_an_error_naming_it(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    space = {"train.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}
    out = tmp_path / "study"
    assert main(["tune", "--config", str(_tune_file(tmp_path / "tune.yaml", space)),
                 "--data", str(store), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "space key 'train.lrr'" in err and "did you mean 'lr'" in err
    assert not out.exists()


def test_shorthands_never_override_set(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["tune", "--config", str(_tune_file(tmp_path / "tune.yaml", SPACE)), "--data",
            str(store), "--out", str(tmp_path / "study"), "--epochs", "3", "--trials", "5",
            "--set", "base.train.epochs=2", "--print-config"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["base"]["train"]["epochs"], printed["trials"]) == (2, 5)
    assert printed["base"]["data"] == str(store.resolve())
    assert not (tmp_path / "study").exists()


def test_a_method_made_of_stages_is_tuned_on_its_last_stage(store: Path, tmp_path: Path) -> None:
    config = {
        "method": "dagfm", "trials": 2, "metric": "valid auc",
        "base": {"teacher": {"model": "dcnv2", "model_config": {"hidden_units": [8],
                                                                "embedding_dim": 4}},
                 "student": {"model_config": {"depth": 1, "embedding_dim": 4}},
                 "train": {"batch_size": 100, "num_threads": 1, "log_every_steps": 1000}},
        "space": {"beta": {"type": "float", "low": 0.1, "high": 10.0, "log": True}},
    }
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "study"
    assert main(["tune", "--config", str(tmp_path / "tune.yaml"), "--data", str(store),
                 "--out", str(out), "--epochs", "1"]) == 0
    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'study.db'}")
    for trial in study.trials:  # each trial's value is its finetuned student's validation AUC
        student = read_metrics(out / trial.user_attrs["folder"] / "finetune")["valid"]
        assert trial.value == pytest.approx(student["dagfm_1"]["auc"], abs=1e-9)
    assert 0.1 <= yaml.safe_load((out / "best.yaml").read_text())["beta"] <= 10.0
