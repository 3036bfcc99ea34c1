"""`mutualctr demo` end to end at a tiny size, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutualctr.cli import main

TINY = ["--rows", "3000", "--set", "train.batch_size=500", "--set", "finetune.batch_size=500",
        "--set", "train.num_threads=1", "--set", "finetune.num_threads=1",
        "--set", "latency_seconds=0.01"]
ROWS = {"alone deepfm", "alone dcn", "ensemble", "distill deepfm", "mutual scratch deepfm",
        "mutual scratch dcn", "mutual finetune deepfm", "mutual finetune dcn",
        "finetune alone deepfm", "finetune alone dcn", "ektf student", "ektf ensemble",
        "cetnet fused", "cetnet member deepfm_1", "cetnet member dcn_2"}


@pytest.mark.slow
def test_demo_compares_every_way_of_training_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--out", str(tmp_path), *TINY]) == 0
    printed = capsys.readouterr()
    assert "| method | seeds | test AUC |" in printed.out
    assert "### Recommendation" in printed.out and "One seed: no significance test" in printed.out
    assert "[1/8]" in printed.err  # visible progress: 8 runs for one seed
    out = tmp_path / "comparison"
    assert (out / "report.md").read_text().strip() in printed.out
    results = json.loads((out / "results.json").read_text())
    assert {s["row"] for s in results["summaries"]} == ROWS
    assert (out / "comparison.png").stat().st_size > 0
    # the demo's size: one seed, at most three epochs per run, one finetuning epoch
    config = (out / "experiment.yaml").read_text()
    assert "seeds: 1" in config
    alone = out / "runs" / "alone" / "deepfm" / "seed2024" / "metrics.jsonl"
    assert 1 <= len(alone.read_text().splitlines()) <= 3

    # a second run reuses the data and every finished run
    assert main(["demo", "--out", str(tmp_path), *TINY]) == 0
    again = capsys.readouterr()
    assert again.err.count("done before") == 8
    assert "epoch 1/" not in again.err
