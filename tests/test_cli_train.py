"""`mutualctr train / evaluate / predict / export` end to end on small stores."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from exported_models import run_exported
from mutualctr.cli import main
from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.metrics import gauc
from mutualctr.runfolders.restore import load_trained
from mutualctr.serving.export import EXPORT_FORMATS, SUFFIXES, input_names, signature_path
from mutualctr.training.trainer import predict_split
from training_support import write_store

SMALL = ["--set", "train.batch_size=100", "--set", "model_config.hidden_units=[16]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    store = write_store(root / "store", {"train": 2000, "valid": 400, "test": 400})
    run = root / "run"
    assert main(["train", "--data", str(store), "--model", "deepfm", "--out", str(run),
                 "--epochs", "2", *SMALL]) == 0
    return store, run


def test_run_folder_contents(trained: tuple[Path, Path]) -> None:
    _, run = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test"} and set(metrics["test"]) == {"deepfm"}
    assert set(metrics["test"]["deepfm"]) == {"auc", "logloss"}
    assert metrics["test"]["deepfm"]["auc"] > 0.7  # the synthetic clicks are learnable
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 2 and config["model_config"]["hidden_units"] == [16]
    assert config["model_config"]["embedding_dim"] == 16  # defaults written out
    with np.load(run / "test_predictions.npz") as saved:
        assert saved["pred_deepfm"].shape == (400,)


def test_evaluate_reproduces_metrics_exactly(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = trained
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    # evaluate adds normalized entropy, which a plain run's metrics.json does not hold
    assert {split: {name: {k: values[k] for k in saved[split][name]}
                    for name, values in by_name.items()}
            for split, by_name in printed.items()} == saved


def test_every_export_format_gives_the_same_predictions(trained: tuple[Path, Path]) -> None:
    """The three formats exported side by side into the run's default paths, each with its
    own signature, predict the run's test rows at another batch size than traced with."""
    store, run = trained
    for fmt in EXPORT_FORMATS:
        assert main(["export", str(run), "--format", fmt]) == 0
    split = EncodedStore.open(store).split("test")
    batch = next(BatchLoader(split, 37).batches(0))
    model = load_trained(run)
    inputs = dict(zip(input_names(model.feature_map),
                      (t.numpy() for t in (batch.categorical, batch.numeric, *batch.sequences)),
                      strict=True))
    want = predict_split(model.group, model.objective, split, 37, torch.device("cpu"))["deepfm"]
    for fmt in EXPORT_FORMATS:
        model_file = run / "export" / f"model{SUFFIXES[fmt]}"
        assert json.loads(signature_path(model_file).read_text())["format"] == fmt
        got = run_exported(model_file, inputs)["deepfm"]
        np.testing.assert_allclose(got, want[:37], rtol=0, atol=1e-5, err_msg=fmt)


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_onnx_export_without_its_packages_is_a_clear_error(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, package: str, tmp_path: Path,
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real_find_spec(name, *a))
    out = tmp_path / "model.onnx"
    assert main(["export", str(trained[1]), "--format", "onnx", "--out", str(out)]) == 2
    assert f"needs the `{package}` package: `pip install {package}`" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_resume_flag_reuses_stored_config(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = trained
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "already finished" in capsys.readouterr().err


def test_config_typo_is_reported(trained: tuple[Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    store, run = trained
    assert main(["train", "--data", str(store), "--model", "deepfm", "--out", str(run),
                 "--set", "train.early_stoping.patience=3"]) == 2
    assert "'train.early_stoping'; did you mean 'early_stopping'" in capsys.readouterr().err


def test_predict_appends_predictions_to_raw_rows(tmp_path: Path) -> None:
    raw, store, run = tmp_path / "raw.tsv", tmp_path / "store", tmp_path / "run"
    assert main(["data", "synth", "--rows", "1500", "--seed", "3", "--out", str(raw)]) == 0
    assert main(["data", "prepare", "--format", "criteo", "--out", str(store), str(raw)]) == 0
    assert main(["train", "--data", str(store), "--model", "lr", "--out", str(run),
                 "--set", "train.batch_size=500"]) == 0
    lines = raw.read_text().splitlines()[:7]
    (tmp_path / "few.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), "--input", str(tmp_path / "few.tsv"),
                 "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7
    assert [r["label"] for r in rows] == [line.split("\t")[0] for line in lines]
    probs = np.array([float(r["prediction"]) for r in rows])
    assert ((probs > 0) & (probs < 1)).all()


def test_evaluate_reports_gauc_by_a_field(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, run = trained
    capsys.readouterr()
    assert main(["evaluate", str(run), "--splits", "test", "--gauc-by", "b"]) == 0
    reported = json.loads(capsys.readouterr().out)["test"]["deepfm"]
    opened = EncodedStore.open(store)
    split = opened.split("test")
    with np.load(run / "test_predictions.npz") as saved:
        expected = gauc(saved["label"], saved["pred_deepfm"], np.asarray(split.categorical[:, 1]))
    assert reported["gauc_impressions"] == pytest.approx(expected, abs=1e-12)
    assert 0.0 < reported["gauc_users"] <= 1.0
    rate = float(np.mean(opened.split("train").label))  # NE: the training background rate
    background = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert reported["normalized_entropy"] == pytest.approx(reported["logloss"] / background)
