"""`experiment yilmaz` at a tiny size: the paper's recipe (schedule, early-stopped pretraining,
one finetuning epoch), which runs are grouped (RQ3, RQ4), the report's tables beside the
paper's and the paired tests over groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from mutualctr.cli import main
from mutualctr.errors import ConfigError
from mutualctr.experiments.yilmaz.plan import YilmazConfig, YilmazPlan, size_group
from mutualctr.methods.members import member_auc
from mutualctr.training.config import TrainConfig
from training_support import write_store

MODELS = ("deepfm", "dcn")
TRAIN_ROWS, BATCH = 800, 200
SETTINGS = {"models": MODELS, "seeds": 3, "groups": 2, "questions": (1, 2, 3, 4),
            "max_group": 4}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, YilmazConfig]:
    """Every question, two groups of three runs per model, RQ4 up to N = 4 (one added run)."""
    root = tmp_path_factory.mktemp("yilmaz")
    data = write_store(root / "data", {"train": TRAIN_ROWS, "valid": 300, "test": 300})
    out = root / "exp"
    code = main([
        "experiment", "yilmaz", "--data", str(data), "--out", str(out), "--models", *MODELS,
        "--seeds", "3", "--groups", "2", "--max-group", "4", "--epochs", "2",
        "--batch-size", str(BATCH), "--threads", "1",
        "--set", "model_config.hidden_units=[8]", "--set", "model_config.embedding_dim=4",
    ])
    assert code == 0
    return out, YilmazConfig(data=str(data), **SETTINGS)


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_defaults_are_the_papers_recipe() -> None:
    """Section 3.1.4: exponential decay to 1/10 over 3 epochs; pretraining early-stopped with
    the best epoch restored; finetuning one epoch at 7e-4 (section 3.3)."""
    config = YilmazConfig()
    for train in (config.train, config.finetune):
        assert (train.schedule.name, train.schedule.decay_to, train.schedule.decay_epochs) == (
            "exponential", 0.1, 3.0)
    assert config.train.epochs > 1 and config.train.lr == 1e-3
    assert config.train.early_stopping.restore_best
    assert (config.finetune.epochs, config.finetune.lr) == (1, 7e-4)


def test_learning_rate_decays_to_a_tenth_in_three_epochs(
    experiment: tuple[Path, YilmazConfig],
) -> None:
    out, _ = experiment
    steps_per_epoch = TRAIN_ROWS // BATCH
    for epoch in _history(out / "independent" / "deepfm" / "seed1"):
        k = epoch["epoch"] * steps_per_epoch - 1  # the epoch's last step
        assert epoch["lr"] == pytest.approx(1e-3 * 0.1 ** (k / (3 * steps_per_epoch)))
    for kind in ("finetune", "alone"):
        (only,) = _history(out / kind / "dcn" / "group1")
        k = steps_per_epoch - 1
        assert only["lr"] == pytest.approx(7e-4 * 0.1 ** (k / (3 * steps_per_epoch)))


def test_pretraining_restores_the_best_validation_epoch(
    experiment: tuple[Path, YilmazConfig],
) -> None:
    out, _ = experiment
    run = out / "independent" / "dcn" / "seed2"
    history = _history(run)
    assert len(history) == 2
    best = max(e["valid"]["dcn"]["auc"] for e in history)
    assert _metrics(run)["valid"]["dcn"]["auc"] == pytest.approx(best, abs=1e-12)


def test_size_group_drops_the_worst_run_one_at_a_time() -> None:
    base, valid, extra = ["s1", "s2", "s3", "s4"], [0.70, 0.72, 0.69, 0.71], ["s5", "s6"]
    assert size_group(base, valid, extra, 4) == base
    assert size_group(base, valid, extra, 3) == ["s1", "s2", "s4"]
    assert size_group(base, valid, extra, 2) == ["s2", "s4"]
    assert size_group(base, valid, extra, 5) == ["s1", "s2", "s3", "s4", "s5"]


def test_rq4_starts_from_rq2s_group_and_rq3_from_its_best_runs(
    experiment: tuple[Path, YilmazConfig],
) -> None:
    out, settings = experiment
    exp = YilmazPlan(settings, out)
    assert settings.pretrained_runs == 6
    for model in MODELS:
        rq2 = exp.independent_runs(model, 3)
        assert exp.size_dir(model, 3) == out / "finetune" / model / "group1"
        assert not (out / "size" / model / "n3").exists()
        worst = min(rq2, key=lambda r: member_auc(r)["valid"])
        starts = {n: [Path(v["run"]) for v in _metrics(exp.size_dir(model, n))["init"].values()]
                  for n in (2, 3, 4)}
        assert starts[3] == rq2
        assert starts[2] == [r for r in rq2 if r != worst]
        assert starts[4] == [*rq2, exp.independent_dir(model, 4)]
        group2 = _metrics(out / "finetune" / model / "group2")["init"]
        assert [Path(v["run"]).name for v in group2.values()] == ["seed4", "seed5", "seed6"]

    mixed = _metrics(out / "mixed")
    best = [max(exp.independent_runs(m, 3), key=lambda r: member_auc(r)["valid"])
            for m in MODELS]
    assert [Path(mixed["init"][m]["run"]) for m in MODELS] == best


def _group_mean(run: Path) -> float:
    test = _metrics(run)["test"]
    aucs = [v["auc"] for k, v in test.items() if k != "ensemble"]
    return sum(aucs) / len(aucs)


def test_report_tables_follow_the_papers_layout(experiment: tuple[Path, YilmazConfig]) -> None:
    out, _ = experiment
    report = (out / "report.md").read_text()
    titles = [line for line in report.splitlines() if line.startswith("## ")]
    assert titles == ["## Pretraining: validation AUC per epoch",
                      "## Table 1: RQ1 and RQ2, independent training vs mutual learning",
                      "## Table 2: RQ3, same-model vs different-model groups",
                      "## Tables 3-4: RQ4, number of co-trained models", "## Summary"]
    assert "Yilmaz & Aldemir 2024, Table 1" in report
    # the pretraining curves: one row per independent run, with the epoch it kept
    kept = _metrics(out / "independent" / "dcn" / "seed1")["valid"]["dcn"]["auc"]
    curve = next(line for line in report.splitlines() if line.startswith("| dcn run 1 |"))
    assert f"{kept:.4f}" in curve
    assert (out / "pretraining_curves.png").is_file()
    # Table 1: DCN's mutual-with-pretraining row carries the paper's runs and their RelaImp
    # per run against its independent runs (Avazu), computed here by hand
    avazu_ind = (0.79425, 0.79394, 0.79383, 0.79390)
    avazu_ft = (0.79562, 0.79565, 0.79578, 0.79560)
    gains = [(a - 0.5) / (b - 0.5) - 1 for a, b in zip(avazu_ft, avazu_ind, strict=True)]
    row = next(line for line in report.splitlines()
               if line.startswith("| dcn | mutual with pretraining | 1 |"))
    assert "0.79562 0.79565 0.79578 0.79560" in row
    low, high = 100 * min(gains), 100 * max(gains)
    assert f"{100 * sum(gains) / 4:+.2f}% ({low:+.2f}..{high:+.2f}%)" in row
    # Table 2: a row per data set and training, a column per model
    dml = (0.79622 - 0.5) / (0.79425 - 0.5) - 1
    assert "| Avazu (paper) | DML of diff. models | 0.79677 (+" in report
    assert f"0.79622 ({100 * dml:+.2f}%)" in report
    # Tables 3-4: DCN beside the paper's Table 4 (Criteo), N from the largest
    assert "### dcn (paper: Yilmaz & Aldemir 2024, Table 4, Criteo)" in report
    assert "0.81251 0.81249 0.81248 0.81247 |" in report


def test_paired_tests_take_one_value_per_group(experiment: tuple[Path, YilmazConfig]) -> None:
    """Group g's mean member AUC after mutual finetuning against the same group's pretrained
    mean and its finetuned-alone mean, paired over the two groups."""
    out, _ = experiment
    report = (out / "report.md").read_text()
    pretrained = [[_metrics(out / "independent" / "dcn" / f"seed{k}")["test"]["dcn"]["auc"]
                   for k in ks] for ks in ((1, 2, 3), (4, 5, 6))]
    before = [sum(p) / 3 for p in pretrained]
    for label, other in (("RQ2: mutual with pretraining - pretrained", before),
                         ("RQ2: mutual with pretraining - finetuned alone",
                          [_group_mean(out / "alone" / "dcn" / f"group{g}") for g in (1, 2)])):
        after = [_group_mean(out / "finetune" / "dcn" / f"group{g}") for g in (1, 2)]
        diffs = [a - b for a, b in zip(after, other, strict=True)]
        p = stats.ttest_rel(after, other).pvalue
        row = next(line for line in report.splitlines() if line.startswith(f"| dcn | {label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:] == [
            "2", f"{sum(diffs) / 2:+.5f}", f"{abs(diffs[0] - diffs[1]) / 2 ** 0.5:.5f}",
            f"{p:.3f}"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seeds": 1}, "seeds"), ({"groups": 0}, "groups"),
     ({"questions": (5,)}, "research questions"),
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
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--epochs", "2"]) != 0
    error = capsys.readouterr().err
    assert "seed1 was made with a different config" in error and "--overwrite" in error
    assert main([*args, "--epochs", "2", "--overwrite"]) == 0
    history = (out / "independent" / "deepfm" / "seed1" / "metrics.jsonl").read_text()
    assert len(history.splitlines()) == 2
