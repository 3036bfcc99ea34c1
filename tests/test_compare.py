"""`mutualctr compare` end to end, as a user runs it, on the three store shapes users have, and
its Python form: every applicable way trained, its rows read back, a rerun that reuses it all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mutualctr
from mutualctr.cli import main
from mutualctr.metrics import auc
from mutualctr.runfolders.folder import read_config, read_metrics
from training_support import STORE_SHAPES

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--epochs", "1", "--set", "train.batch_size=200", "--set", "finetune.batch_size=200",
         "--set", "latency_seconds=0.01",
         "--set", "train.log_every_steps=1000"]
ROWS = {"alone": ["alone {a}", "alone {b}"], "ensemble": ["ensemble"],
        "distill": ["distill {a}"], "mutual_scratch": ["mutual scratch {a}", "mutual scratch {b}"],
        "mutual_finetune": ["mutual finetune {a}", "mutual finetune {b}", "finetune alone {a}",
                            "finetune alone {b}"],
        "ektf": ["ektf student", "ektf ensemble"],
        "cetnet": ["cetnet fused", "cetnet member {a}_1", "cetnet member {b}_2"]}


def expected_rows(a: str, b: str) -> set[str]:
    return {row.format(a=a, b=b) for rows in ROWS.values() for row in rows}


@pytest.mark.parametrize(("shape", "models", "seeds", "controls"), [
    ("criteo, all categorical", ("deepfm", "dcn"), 2, set()),
    ("categorical and numeric", ("dnn", "fm"), 1, set()),
    # dnn's control without the history; din attends over it and has none
    ("multi-hot and history", ("din", "dnn"), 1, {"alone dnn without histories"}),
])
def test_compare_trains_every_way_and_reads_each_row_back(
    shape: str, models: tuple[str, str], seeds: int, controls: set[str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = STORE_SHAPES[shape](tmp_path / "data", 900)
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(store), "--out", str(out), "--models", *models,
            "--seeds", str(seeds), *SMALL]
    assert main(argv) == 0
    printed = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    rows = expected_rows(*models) | controls
    assert {s["row"] for s in results["summaries"]} == rows
    assert len(results["outcomes"]) == seeds * len(rows)
    assert "### Recommendation" in printed.out and (out / "comparison.png").stat().st_size > 0
    first = results["outcomes"][0]["seed"]
    by_row = {o["row"]: o for o in results["outcomes"] if o["seed"] == first}
    # a row's AUC is its run's; the ensemble's is the mean of the alone runs' test predictions
    alone = {m: out / "runs" / "alone" / m / f"seed{first}" for m in models}
    a = models[0]
    assert by_row[f"alone {a}"]["test_auc"] == pytest.approx(
        read_metrics(alone[a])["test"][a]["auc"], abs=1e-9)
    predictions = [np.load(run / "test_predictions.npz") for run in alone.values()]
    mean = np.mean([p[f"pred_{m}"] for p, m in zip(predictions, models, strict=True)], axis=0)
    assert by_row["ensemble"]["test_auc"] == pytest.approx(
        auc(predictions[0]["label"], mean), abs=1e-6)
    # costs: the finetuned member counts its pretraining; the ensemble serves two models
    epochs = {m: by_row[f"alone {m}"]["training"]["member_epochs"] for m in models}
    tuned = by_row[f"mutual finetune {a}"]
    assert tuned["training"]["member_epochs"] == sum(epochs.values()) + 2
    assert tuned["control"] == f"finetune alone {a}"
    assert by_row["ensemble"]["serving"]["models"] == 2
    assert not by_row["ensemble"]["serving"]["single_model"]
    assert by_row["ensemble"]["serving"]["parameters"] == sum(
        by_row[f"alone {m}"]["serving"]["parameters"] for m in models)
    assert by_row["cetnet fused"]["serving"] | {"models": 2, "single_model": True} == \
        by_row["cetnet fused"]["serving"]
    # a rerun trains nothing and reads the same rows
    for control in controls:  # the same model alone, the history excluded, is its control
        model = control.split()[1]
        assert by_row[f"alone {model}"]["control"] == control
        run = out / "runs" / "alone_without_histories" / model / f"seed{first}"
        assert read_config(run)["model_config"]["exclude_fields"] == ["hist_item"]
        assert by_row[control]["test_auc"] == read_metrics(run)["test"][model]["auc"]
        summary = next(s for s in results["summaries"] if s["row"] == f"alone {model}")
        assert summary["vs_control"]["mean"] == pytest.approx(
            by_row[f"alone {model}"]["test_auc"] - by_row[control]["test_auc"])
        assert "Skipped alone din without histories: model 'din' attends over" in \
            (out / "report.md").read_text()
    if not controls:  # a store without histories: no control row, no extra run
        assert not (out / "runs" / "alone_without_histories").exists()
        assert all(not by_row[f"alone {m}"]["control"] for m in models)
    assert main(argv) == 0
    assert "->" not in "".join(line for line in capsys.readouterr().err.splitlines()
                               if line.startswith("["))
    again = json.loads((out / "results.json").read_text())
    assert [o["test_auc"] for o in again["outcomes"]] == [o["test_auc"]
                                                          for o in results["outcomes"]]


def test_dry_run_plans_and_estimates_without_training_or_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = STORE_SHAPES["categorical and numeric"](tmp_path / "data", 600)
    out = tmp_path / "cmp"
    assert main(["compare", "--data", str(store), "--out", str(out), "--models", "din", "dnn",
                 "--dry-run", *SMALL]) == 0
    text = capsys.readouterr().out
    assert "[1/3] alone dnn, seed 2024: at most" in text and "estimated time" in text
    assert "skipping alone din: the store has no behaviour histories" in text
    assert "skipping cetnet: needs two models" in text
    assert not out.exists()


def test_python_compare_returns_the_report_and_its_results(tmp_path: Path) -> None:
    store = STORE_SHAPES["categorical and numeric"](tmp_path / "data", 600)
    result = mutualctr.compare(data=store, out=tmp_path / "cmp", models=["dnn", "lr"], seeds=2,
                               methods=["alone", "ensemble", "mutual_scratch"],
                               train={"epochs": 1, "batch_size": 200}, latency_seconds=0.01)
    assert result.report == (tmp_path / "cmp" / "report.md").read_text()
    rows = {s["row"] for s in result.results["summaries"]}
    assert rows == {"alone dnn", "alone lr", "ensemble", "mutual scratch dnn",
                    "mutual scratch lr"}
    assert result.results["best_single"] in {"alone dnn", "alone lr"}
    assert (tmp_path / "cmp" / "experiment.yaml").is_file()
