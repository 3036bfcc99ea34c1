"""`mutualctr demo` end to end at a tiny size, through the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mutualctr.cli import main

TINY = ["--rows", "2000", "--batch-size", "500", "--threads", "1",
        "--set", "model_config.hidden_units=[8]", "--set", "model_config.embedding_dim=4"]


@pytest.mark.slow
def test_demo_runs_rq1_and_rq2_and_prints_the_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--out", str(tmp_path), *TINY]) == 0
    printed = capsys.readouterr()
    assert "## Table 1: RQ1 and RQ2, independent training vs mutual learning" in printed.out
    for model in ("deepfm", "dcn"):
        for row in ("mutual from scratch", "finetuned alone (control)",
                    "mutual with pretraining"):
            assert f"| {model} | {row} | 1 |" in printed.out
    assert "[1/" in printed.err  # visible progress
    exp = tmp_path / "experiment"
    assert (exp / "report.md").read_text() in printed.out
    with (exp / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # 2 models x (2 independent + 2 scratch + 2 mutual finetuned + 2 finetuned alone)
    assert len(rows) == 16
    finetuned = [r for r in rows if r["question"] == "RQ2"]
    starts = {float(r["test_auc"]) for r in rows if r["question"] == "pretrain"}
    assert {float(r["start_test_auc"]) for r in finetuned} == starts
    assert (exp / "auc_per_model.png").stat().st_size > 0
    # the paper's recipe at the demo's size: early-stopped pretraining of at most two epochs,
    # one finetuning epoch, the exponential schedule for both
    config = (exp / "experiment.yaml").read_text()
    assert config.count("name: exponential") == 2
    seed1 = (exp / "independent" / "deepfm" / "seed1" / "metrics.jsonl").read_text()
    assert 1 <= len(seed1.splitlines()) <= 2

    # a second run reuses the data and every finished run
    assert main(["demo", "--out", str(tmp_path), *TINY]) == 0
    again = capsys.readouterr()
    assert again.err.count("done before") == 10
    assert "epoch 1/1" not in again.err
