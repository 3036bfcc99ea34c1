"""`experiment yilmaz` RQ3 and RQ4 at a tiny size: which runs are grouped, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mutualctr.cli import main
from mutualctr.config import TrainConfig
from mutualctr.errors import ConfigError
from mutualctr.experiments.yilmaz_runs import YilmazConfig, YilmazExperiment
from mutualctr.methods.members import member_auc
from training_support import write_store


def test_rq3_and_rq4_group_the_right_pretrained_runs(tmp_path: Path) -> None:
    data = write_store(tmp_path / "data", {"train": 800, "valid": 300, "test": 300})
    out = tmp_path / "exp"
    code = main([
        "experiment", "yilmaz", "--data", str(data), "--out", str(out), "--models", "deepfm",
        "dcn", "--seeds", "2", "--questions", "3", "4", "--max-group", "3", "--batch-size", "200",
        "--threads", "1", "--set", "model_config.hidden_units=[8]",
        "--set", "model_config.embedding_dim=4",
    ])
    assert code == 0
    settings = YilmazConfig(data=str(data), models=("deepfm", "dcn"), seeds=2,
                            questions=(3, 4), max_group=3)
    exp = YilmazExperiment(settings, out)
    assert settings.pretrained_runs == 3

    mixed = json.loads((out / "mixed" / "metrics.json").read_text())
    best = [max(exp.independent_runs(m), key=lambda r: member_auc(r)["valid"])
            for m in ("deepfm", "dcn")]
    assert [Path(mixed["init"][m]["run"]) for m in ("deepfm", "dcn")] == best

    for model in ("deepfm", "dcn"):
        runs = exp.independent_runs(model, 3)
        ranked = sorted(runs, key=lambda r: member_auc(r)["valid"], reverse=True)
        for n in (2, 3):
            metrics = json.loads((out / "size" / model / f"n{n}" / "metrics.json").read_text())
            starts = [Path(v["run"]) for v in metrics["init"].values()]
            assert starts == ranked[:n]

    report = (out / "report.md").read_text()
    assert "## RQ3: mixed vs same-model groups" in report
    assert "## RQ4: number of models" in report
    assert "## RQ1" not in report
    assert (out / "auc_vs_group_size.png").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seeds": 1}, "seeds"), ({"questions": (5,)}, "research questions"),
     ({"models": ("deepfm", "nope")}, "unknown model"), ({"models": ("deepfm",)}, "RQ3")],
)
def test_bad_settings_fail_before_training(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        YilmazConfig(data=str(tmp_path), train=TrainConfig(), **kwargs)


def test_changed_settings_are_refused_until_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running into the same folder with other settings names the folder and --overwrite;
    with --overwrite the runs are retrained with the new settings."""
    data = write_store(tmp_path / "data", {"train": 400, "valid": 200, "test": 200})
    out = tmp_path / "exp"
    args = ["experiment", "yilmaz", "--data", str(data), "--out", str(out), "--models",
            "deepfm", "dcn", "--seeds", "2", "--questions", "1", "--no-control", "--batch-size",
            "200", "--threads", "1", "--set", "model_config.hidden_units=[8]", "--set",
            "model_config.embedding_dim=4"]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--epochs", "2"]) != 0
    error = capsys.readouterr().err
    assert "seed1 was made with a different config" in error and "--overwrite" in error
    assert main([*args, "--epochs", "2", "--overwrite"]) == 0
    history = (out / "independent" / "deepfm" / "seed1" / "metrics.jsonl").read_text()
    assert len(history.splitlines()) == 2
