"""One command-line convention for every training command and experiment, and run folders that
load in `evaluate`, `predict` and `export` whatever the method that wrote them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import yaml

from mutualctr.cli import build_parser, main
from mutualctr.runfolders.folder import read_metrics
from mutualctr.serving.export import load_torchscript
from training_support import write_store

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_TRAIN = ["--set", "train.batch_size=200", "--set", "train.num_threads=1",
               "--set", "train.log_every_steps=1000"]
# (argv after the command name, what the command needs besides --data/--out)
TRAINING_COMMANDS = {
    "train": ["--model", "dnn"],
    "mutual": ["--models", "dnn", "lr"],
    "ektf": ["--k", "2"],
    "cetnet": ["--models", "dnn", "lr"],
    "dagfm": [],
}
EXPERIMENTS = ["yilmaz", "ektf", "cetnet"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("convention") / "data",
                       {"train": 600, "valid": 200, "test": 200})


def _options(argv: list[str]) -> set[str]:
    parser = build_parser(argv)
    found: set[str] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name in argv:
                    if name in action.choices:
                        walk(action.choices[name])
                        return
            found.update(action.option_strings)

    walk(parser)
    return found


COMMON = {"--config", "--set", "--print-config", "--overwrite", "--resume", "--out", "--data",
          "--epochs"}


@pytest.mark.parametrize("argv", [[c] for c in TRAINING_COMMANDS]
                         + [["experiment", e] for e in EXPERIMENTS] + [["tune"]])
def test_every_command_takes_the_common_options(argv: list[str]) -> None:
    assert _options(argv) >= COMMON


def _printed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main([*argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("command", list(TRAINING_COMMANDS))
def test_a_shorthand_never_overrides_set_and_nothing_is_written(
    command: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [command, "--data", str(store), "--out", str(tmp_path / "run"),
            *TRAINING_COMMANDS[command]]
    assert _printed([*argv, "--epochs", "3"], capsys)["train"]["epochs"] == 3
    both = _printed([*argv, "--epochs", "3", "--set", "train.epochs=2"], capsys)
    assert both["train"]["epochs"] == 2
    assert both["data"] == str(store.resolve())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_resolve_seeds_and_epochs_the_same_way(
    experiment: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["experiment", experiment, "--data", str(store), "--out", str(tmp_path / "exp"),
            "--seeds", "3", "--epochs", "4", "--set", "train.epochs=2"]
    config = _printed(argv, capsys)
    assert (config["seeds"], config["train"]["epochs"]) == (3, 2)


def test_printed_config_runs_as_a_file_and_resume_reads_the_stored_one(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["cetnet", "--data", str(store), "--out", str(tmp_path / "run"), "--models", "lr",
            "--alpha", "0.5", "--set", "members=[{model: dnn, model_config: {hidden_units: [8]}},"
            " {model: dnn}]", "--embedding-dim", "4", *SMALL_TRAIN]
    printed = _printed(argv, capsys)
    assert printed["alpha"] == 0.5  # --set beats --models; --embedding-dim reaches each member
    assert [(m["model"], m["model_config"]) for m in printed["members"]] == [
        ("dnn", {"hidden_units": [8], "embedding_dim": 4}), ("dnn", {"embedding_dim": 4})]
    file = tmp_path / "cetnet.yaml"
    file.write_text(yaml.safe_dump(printed))
    assert main(["cetnet", "--config", str(file), "--out", str(tmp_path / "run")]) == 0
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored == {"method": "cetnet", **printed}
    capsys.readouterr()
    assert main(["cetnet", "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "made by `mutualctr cetnet`" in capsys.readouterr().err


def _train(command: str, store: Path, out: Path) -> Path:
    extra = {"mutual": ["--models", "dnn", "lr"],
             "ektf": ["--k", "2", "--hidden", "8", "--embedding-dim", "4"],
             "cetnet": ["--models", "dnn", "lr", "--embedding-dim", "4"],
             "dagfm": ["--embedding-dim", "4", "--set", "teacher.model_config.hidden_units=[8]"]}
    assert main([command, "--data", str(store), "--out", str(out), *extra[command],
                 *SMALL_TRAIN]) == 0
    return out / "finetune" if command == "dagfm" else out


@pytest.mark.parametrize("command", ["mutual", "ektf", "cetnet", "dagfm"])
def test_every_method_writes_a_run_that_evaluate_predict_and_export_load(
    command: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = _train(command, store, tmp_path / "run")
    metrics = read_metrics(run)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--splits", "test"]) == 0
    evaluated = json.loads(capsys.readouterr().out)["test"]
    assert set(evaluated) == set(metrics["test"])
    for name, values in evaluated.items():
        assert values["auc"] == pytest.approx(metrics["test"][name]["auc"], abs=1e-9)
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    exported = load_torchscript(run / "export" / "model.pt")
    outputs = exported(torch.ones(3, 3, dtype=torch.long), torch.zeros(3, 1))
    assert len(outputs) == len(metrics["test"]) and outputs[0].shape == (3,)


def test_set_of_one_nested_key_keeps_the_other_defaults_of_that_section(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The experiment's own defaults (the paper's batch of 4000, finetuning at 7e-4) survive an
    override of another key of the same section."""
    config = _printed(["experiment", "yilmaz", "--data", str(store), "--out", str(tmp_path),
                       "--set", "train.epochs=2", "--set", "finetune.epochs=3"], capsys)
    assert (config["train"]["epochs"], config["train"]["batch_size"]) == (2, 4000)
    assert (config["finetune"]["epochs"], config["finetune"]["lr"]) == (3, 7e-4)


def test_embedding_dim_has_one_spelling_and_old_keys_say_what_to_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    # --embedding-dim reaches every member, the default students included
    printed = _printed(["ektf", "--out", str(tmp_path / "e"), "--embedding-dim", "8"], capsys)
    assert [s["model_config"]["embedding_dim"] for s in printed["students"]] == [8, 8, 8]
    printed = _printed(["dagfm", "--out", str(tmp_path / "d"), "--embedding-dim", "8"], capsys)
    assert printed["teacher"]["model_config"]["embedding_dim"] == 8
    assert printed["student"]["model_config"]["embedding_dim"] == 8
    for command, key, advice in (
        ("cetnet", "models=[dnn,lr]", "write members: [{model: NAME}, ...]"),
        ("cetnet", "embedding_dim=8", "write each member's model_config.embedding_dim"),
        ("ektf", "embedding_dim=8", "write each student's model_config.embedding_dim"),
        ("dagfm", "embedding_dim=8", "write teacher.model_config.embedding_dim"),
    ):
        assert main([command, "--out", str(tmp_path / "x"), "--set", key,
                     "--print-config"]) == 2
        err = capsys.readouterr().err
        assert f"config key '{key.split('=')[0]}' is no more: {advice}" in err
