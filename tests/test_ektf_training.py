"""A tiny end-to-end EKTF run: training, per-epoch reports, export of the best student, the
``ektf`` command, and the experiment's tables from run metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mutualctr.cli import main
from mutualctr.config import from_dict
from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.experiments.ektf import plan as ektf_plan
from mutualctr.experiments.ektf import report as ektf_report
from mutualctr.methods import ektf, runner
from mutualctr.methods.ektf import EKTFConfig, export_best_student, mlp_students
from mutualctr.runfolders.restore import load_trained
from mutualctr.training.config import TrainConfig
from training_support import FEATURE_MAP, write_store

TRAIN = {"epochs": 2, "batch_size": 256, "seed": 3, "device": "cpu", "num_threads": 1,
         "embedding_l2": 0.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("store"), {"train": 3000, "valid": 800,
                                                           "test": 800})


@pytest.fixture(scope="module")
def ektf_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "ektf"
    metrics = runner.run(ektf.METHOD, small_ektf(store), out).metrics
    return out, metrics


def small_ektf(store: Path) -> EKTFConfig:
    return EKTFConfig(data=str(store), students=mlp_students(3, {"hidden_units": [16],
                                                                 "dropout": 0.0,
                                                                 "embedding_dim": 4}),
                      train=from_dict(TrainConfig, TRAIN))


def test_ektf_learns_and_reports_teacher_and_students(ektf_run: tuple[Path, dict]) -> None:
    out, metrics = ektf_run
    names = {"teacher", "dnn_1", "dnn_2", "dnn_3"}
    assert set(metrics["valid"]) == names == set(metrics["test"])
    assert metrics["test"]["teacher"]["auc"] > 0.65  # learnable synthetic clicks
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2
    assert all(set(epoch["valid"]) == names for epoch in history)
    assert history[-1]["best_epoch"].keys() == {"teacher"}  # early stopping watches it


def test_a_finished_run_is_reused_not_retrained(ektf_run: tuple[Path, dict], store: Path
                                                ) -> None:
    out, metrics = ektf_run
    before = (out / "model.pt").stat().st_mtime_ns
    again = runner.run(ektf.METHOD, small_ektf(store), out).metrics
    assert again == metrics
    assert (out / "model.pt").stat().st_mtime_ns == before


def test_best_student_exports_alone_and_predicts_as_in_the_group(
        ektf_run: tuple[Path, dict], store: Path, tmp_path: Path) -> None:
    out, metrics = ektf_run
    name = export_best_student(out, tmp_path / "best")
    assert name == max(("dnn_1", "dnn_2", "dnn_3"), key=lambda n: metrics["valid"][n]["auc"])
    group_run, alone = load_trained(out), load_trained(tmp_path / "best")
    assert alone.group.names == [name]
    batch = next(BatchLoader(EncodedStore.open(store).split("test"), 64).batches(0))
    with torch.no_grad():
        in_group = group_run.objective.predict(group_run.group(batch))[name]
        on_its_own = alone.objective.predict(alone.group(batch))[name]
    torch.testing.assert_close(on_its_own, in_group)
    assert alone.feature_map == FEATURE_MAP


def test_ektf_command_trains_a_kd_baseline(store: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ektf", "--data", str(store), "--out", str(tmp_path / "kdcl"), "--k", "2",
            "--hidden", "8", "--objective", "kdcl", "--embedding-dim", "4", "--epochs", "1",
            "--set", "train.batch_size=512", "--set", "train.device=cpu",
            "--set", "train.num_threads=1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["test"].keys() == {"teacher", "dnn_1", "dnn_2"}


def fake_metrics(teacher: float, students: list[float]) -> dict:
    """A group run whose student i has valid AUC students[i] and test AUC students[i] - 0.01."""
    def m(auc: float) -> dict:
        return {"auc": auc, "logloss": 1.0 - auc}
    valid = {"teacher": m(teacher), **{f"s{i}": m(a) for i, a in enumerate(students)}}
    test = {k: m(v["auc"] - 0.01) for k, v in valid.items()}
    return {"valid": valid, "test": test}


def test_tables_pick_teacher_best_and_worst_students(tmp_path: Path) -> None:
    size = ektf_plan.SIZES["tiny"]
    runs = ektf_plan.configurations(size, ektf_plan.PARTS, latest=("pnn",))
    assert {"single_mlp", "single_pnn", "ektf_latest", "ektf_mlp_k2", "kdcl_mlp_k3",
            "ektf_mlp_k3_only_kd"} <= set(runs)
    assert runs["eckd_mlp_k3"].config.objective == "eckd"
    results = {label: [fake_metrics(0.80, [0.70, 0.76, 0.73])] for label in runs}
    results["single_mlp"] = [{"valid": {"dnn_1": {"auc": 0.7, "logloss": 0.5}},
                              "test": {"dnn_1": {"auc": 0.75, "logloss": 0.5}}}]
    rows = ektf_report.table2(results, size, latest=("pnn",))
    by_model = {r["model"]: r for r in rows}
    assert by_model["MLP"]["test_auc"] == "0.7500"
    assert by_model["EKTF_MLP (K=3, teacher)"]["test_auc"] == "0.7900"
    assert by_model["EKTF_MLP best student"]["test_auc"] == "0.7500"  # s1: best on valid
    # Abs.Imp against the MLP: AUC 0.79 - 0.75 = +4.00 points, logloss 0.21 - 0.5 = -0.29
    assert by_model["EKTF_MLP (K=3, teacher)"]["abs_imp_auc_points"] == "+4.00"
    assert by_model["EKTF_MLP (K=3, teacher)"]["abs_imp_logloss"] == "-0.2900"
    assert by_model["EKTF_MLP (K=3, teacher)"]["p_auc"] == "n/a (one run)"
    ablation = ektf_report.table3(results, size)
    assert [r["method"] for r in ablation] == ["EKTF", "only KD", "only DML",
                                               "w/o examination",
                                               "w/o all (mean ensemble)"]
    assert ablation[0]["worst_student_auc"] == "0.6900"
    report = ektf_report.write_tables(tmp_path, results, size, ektf_plan.PARTS, ("pnn",))
    text = report.read_text()
    assert "Table 5" in text and "KDCL" in text
    assert "Li et al., Table 2" in text and "0.8163⋆" in text  # EKTF_Latest on Criteo
    assert (tmp_path / "ektf_scaling.png").stat().st_size > 0
    assert (tmp_path / "scaling.csv").read_text().splitlines()[0] == \
        "k,ensemble (teacher),best student,worst student"
