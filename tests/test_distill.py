"""`mutualctr distill`: one student distilled from the averaged predictions of trained runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mutualctr.cli import main
from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.methods import get_method
from mutualctr.methods.distill import DistillConfig, FrozenTeachersGroup
from mutualctr.metrics import auc
from mutualctr.models.base import ModelOutput
from mutualctr.runfolders.folder import read_weights
from mutualctr.training.objectives.distill import EnsembleDistillation
from training_support import STORE_SHAPES, group_batch, group_models

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--set", "train.batch_size=100", "--set", "train.num_threads=1",
         "--set", "train.log_every_steps=1000"]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _outputs(*logits: float) -> list[ModelOutput]:
    return [ModelOutput(torch.tensor([z]), torch.zeros(1, 1)) for z in logits]


def test_loss_equals_the_hand_computed_value() -> None:
    # teachers z = 0 and 2, student z = 1, label 1, T = 2, w = 0.25
    q = (_sigmoid(0.0) + _sigmoid(1.0)) / 2  # mean of sigmoid(z_k / T)
    p_soft = _sigmoid(0.5)
    soft = -(q * math.log(p_soft) + (1 - q) * math.log(1 - p_soft))
    hard = -math.log(_sigmoid(1.0))
    expected = 0.75 * hard + 0.25 * 4 * soft
    objective = EnsembleDistillation(["a", "b", "student"], temperature=2.0, weight=0.25)
    batch = Batch(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 0), (), torch.ones(1))
    out = objective(_outputs(0.0, 2.0, 1.0), batch)
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.parts["kd"].item() == pytest.approx(soft, rel=1e-6)  # 0.25 * T^2 = 1
    assert out.predictions["ensemble"].item() == pytest.approx(
        (_sigmoid(0.0) + _sigmoid(2.0)) / 2, rel=1e-6)
    assert out.predictions["student"].item() == pytest.approx(_sigmoid(1.0), rel=1e-6)
    assert objective.monitor == "student"


def test_weight_zero_is_plain_training_and_out_of_range_settings_are_refused() -> None:
    batch = Batch(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 0), (),
                  torch.tensor([1.0, 0.0, 1.0]))
    student = torch.tensor([0.3, -1.2, 2.0])
    outputs = [ModelOutput(torch.tensor([5.0, 5.0, 5.0]), torch.zeros(3, 1)),
               ModelOutput(student, torch.zeros(3, 1))]
    loss = EnsembleDistillation(["t", "s"], weight=0.0)(outputs, batch).loss
    assert loss.item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(student, batch.label).item())
    for settings in ({"temperature": 0.0}, {"weight": 1.5}):
        with pytest.raises(ConfigError):
            EnsembleDistillation(["t", "s"], **settings)
        with pytest.raises(ConfigError):
            DistillConfig(**settings)
    with pytest.raises(ConfigError, match="needs at least one teacher"):
        EnsembleDistillation(["s"])


def test_teachers_stay_frozen_in_evaluation_mode_and_only_the_student_learns() -> None:
    teachers, student = group_models("dnn", 3)[:2], group_models("dnn", 3)[2]
    group = FrozenTeachersGroup(teachers, student, ["t1", "t2", "s"])
    group.train()
    assert [m.training for m in group.models] == [False, False, True]
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in teachers]
    objective = EnsembleDistillation(["t1", "t2", "s"], temperature=2.0)
    optimizer = torch.optim.Adam([p for p in group.parameters() if p.requires_grad], lr=0.1)
    for seed in range(3):
        batch = group_batch(seed)
        optimizer.zero_grad()
        objective(group(batch), batch).loss.backward()
        optimizer.step()
    for teacher, state in zip(teachers, before, strict=True):
        assert all(p.grad is None for p in teacher.parameters())
        assert all(torch.equal(v, state[k]) for k, v in teacher.state_dict().items())
    assert any(p.grad is not None for p in student.parameters())


def _train(argv: list[str]) -> None:
    assert main([*argv, *SMALL]) == 0


@pytest.mark.parametrize(("shape", "student"), [("criteo, all categorical", "deepfm"),
                                                ("categorical and numeric", "deepfm"),
                                                ("multi-hot and history", "din")])
def test_cli_distils_trained_runs_on_each_store_shape(
    shape: str, student: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = str(STORE_SHAPES[shape](tmp_path / "data", 1200))
    teachers = []
    for model in ("dnn", "lr"):
        teachers.append(tmp_path / model)
        _train(["train", "--data", store, "--model", model, "--out", str(teachers[-1]),
                "--epochs", "1"])
    out, served = tmp_path / "distill", tmp_path / "served"
    capsys.readouterr()
    _train(["distill", "--data", store, "--teachers", *map(str, teachers), "--student", student,
            "--temperature", "2", "--out", str(out), "--epochs", "2",
            "--export-student", str(served)])
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"student", "ensemble"}
    assert metrics["test"]["student"]["auc"] > 0.55
    # the ensemble is the mean of the teacher runs' own test predictions
    labels = np.load(out / "test_predictions.npz")["label"]
    mean = np.mean([np.load(t / "test_predictions.npz")[f"pred_{t.name}"] for t in teachers],
                   axis=0)
    assert metrics["test"]["ensemble"]["auc"] == pytest.approx(auc(labels, mean), abs=1e-6)
    # the teachers' weights are the runs' weights, untouched
    stored = read_weights(out)["members"]
    for teacher in teachers:
        for key, value in read_weights(teacher)["members"][teacher.name].items():
            assert torch.equal(stored[teacher.name][key], value)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["method"] == "distill" and config["student"]["model"] == student
    assert config["temperature"] == 2.0 and config["weight"] == 0.5
    # the student alone, served: the same test AUC as in the run
    assert f"student student written to {served}" in printed
    assert main(["evaluate", str(served), "--data", store, "--splits", "test"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test"]["student"]["auc"] == pytest.approx(
        metrics["test"]["student"]["auc"], abs=1e-6)


def test_teachers_must_be_runs_and_names_must_not_clash(tmp_path: Path) -> None:
    method = get_method("distill")
    with pytest.raises(ConfigError, match="every teacher is a trained run"):
        method.resolve(method.config(teachers=[{"model": "dnn"}]))
    store = str(STORE_SHAPES["categorical and numeric"](tmp_path / "data", 600))
    _train(["train", "--data", store, "--model", "dnn", "--out", str(tmp_path / "t"),
            "--epochs", "1"])
    with pytest.raises(ConfigError, match="is a teacher's"):
        method.resolve(method.config(teachers=[{"init": str(tmp_path / "t")}],
                                     student={"model": "dnn", "name": "dnn"}))


def test_tune_searches_the_distillation_weight(tmp_path: Path) -> None:
    store = str(STORE_SHAPES["categorical and numeric"](tmp_path / "data", 600))
    _train(["train", "--data", store, "--model", "lr", "--out", str(tmp_path / "t"),
            "--epochs", "1"])
    tune = {"method": "distill", "trials": 2, "metric": "valid auc student",
            "base": {"teachers": [{"init": str(tmp_path / "t")}], "student": {"model": "dnn"},
                     "train": {"batch_size": 100, "num_threads": 1, "log_every_steps": 1000}},
            "space": {"weight": {"type": "float", "low": 0.1, "high": 0.9}}}
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(tune))
    assert main(["tune", "--config", str(tmp_path / "tune.yaml"), "--data", store,
                 "--out", str(tmp_path / "study"), "--epochs", "1"]) == 0
    best = yaml.safe_load((tmp_path / "study" / "best.yaml").read_text())
    assert 0.1 <= best["weight"] <= 0.9 and best["student"]["model"] == "dnn"
