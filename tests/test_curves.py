"""Learning curves read from run folders: best epoch, the table, the plot and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutualctr.cli import main
from mutualctr.experiments.curves import curves_table, learning_curves


def _history(run: Path, valid: list[dict[str, float]]) -> Path:
    run.mkdir(parents=True)
    lines = [json.dumps({"epoch": e, "valid": {n: {"auc": a, "logloss": 0.5}
                                               for n, a in v.items()}})
             for e, v in enumerate(valid, 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_one_epoch_peak_is_found(tmp_path: Path) -> None:
    run = _history(tmp_path / "deepfm", [{"deepfm": 0.7621}, {"deepfm": 0.7578},
                                         {"deepfm": 0.7145}])
    (curve,) = learning_curves(run)
    assert curve.label == "deepfm" and curve.aucs == (0.7621, 0.7578, 0.7145)
    assert curve.best_epoch == 1


def test_group_runs_give_one_curve_per_prediction(tmp_path: Path) -> None:
    run = _history(tmp_path / "g", [{"a": 0.70, "b": 0.71}, {"a": 0.72, "b": 0.70}])
    curves = learning_curves(run, "group")
    assert [(c.label, c.best_epoch) for c in curves] == [("group/a", 2), ("group/b", 1)]
    table = curves_table(curves).splitlines()
    assert table[0] == "| run | epoch 1 | epoch 2 | best |"
    assert table[2] == "| group/a | 0.7000 | 0.7200 | 2 |"


def test_command_plots_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = _history(tmp_path / "short", [{"m": 0.6}])
    long = _history(tmp_path / "long", [{"m": 0.6}, {"m": 0.65}, {"m": 0.64}])
    assert main(["experiment", "curves", str(short), str(long), "--out",
                 str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 0
    assert "| short | 0.6000 |  |  | 1 |" in capsys.readouterr().out


def test_a_folder_without_history_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no training history"):
        learning_curves(tmp_path)
