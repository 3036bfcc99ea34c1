"""What `mutualctr compare` plans: every applicable way per seed, the rest skipped with the
reason, and the time estimate of `--dry-run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutualctr.comparison.estimate import TEACHER_SHARE, estimate, job_seconds
from mutualctr.comparison.plan import CompareConfig, plan, seeds, skipped, without_histories
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.methods.mutual import FINETUNE_LR
from training_support import STORE_SHAPES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EncodedStore]:
    root = tmp_path_factory.mktemp("shapes")
    return {shape: EncodedStore.open(make(root / str(i), 600))
            for i, (shape, make) in enumerate(STORE_SHAPES.items())}


def test_every_way_is_planned_per_seed_in_order(stores: dict[str, EncodedStore],
                                                tmp_path: Path) -> None:
    store = stores["categorical and numeric"]
    config = CompareConfig(data=str(store.root), models=["deepfm", "dcn"], seeds=2)
    assert skipped(config, store.feature_map) == {}
    jobs = plan(config, tmp_path, {})
    assert seeds(config) == [2024, 2025]
    ways = [(j.labels["way"], j.labels.get("model", ""), j.labels["seed"]) for j in jobs]
    per_seed = [("alone", "deepfm"), ("alone", "dcn"), ("distill", ""), ("mutual_scratch", ""),
                ("mutual_finetune", ""), ("finetune_alone", ""), ("ektf", ""), ("cetnet", "")]
    assert ways == [(w, m, s) for s in (2024, 2025) for w, m in per_seed]
    by_way = {(j.labels["way"], j.labels["seed"]): j for j in jobs if j.labels["way"] != "alone"}
    alone = next(j for j in jobs if j.labels.get("model") == "deepfm")
    assert alone.out == tmp_path / "runs" / "alone" / "deepfm" / "seed2024"
    assert alone.config.train.seed == 2024 and alone.config.train.epochs == 5
    tuned, control = by_way[("mutual_finetune", 2025)], by_way[("finetune_alone", 2025)]
    assert [m.init for m in tuned.config.members] == [
        str((tmp_path / "runs" / "alone" / m / "seed2025").resolve()) for m in ("deepfm", "dcn")]
    assert tuned.config.train.lr == FINETUNE_LR and tuned.config.train.epochs == 1
    assert (tuned.config.objective, control.config.objective) == ("mutual", "independent")
    assert control.config.members == tuned.config.members
    distill = by_way[("distill", 2024)]
    assert distill.config.student.model == "deepfm"
    assert distill.labels["teachers"] == ["deepfm", "dcn"]
    assert [s.model for s in by_way[("ektf", 2024)].config.students] == ["deepfm", "dcn"]


def test_ways_that_do_not_apply_are_skipped_with_the_reason(
    stores: dict[str, EncodedStore], tmp_path: Path,
) -> None:
    plain = stores["categorical and numeric"]
    reasons = skipped(CompareConfig(models=["din", "deepfm"]), plain.feature_map)
    assert set(reasons) == {"alone din", "ensemble", "mutual_scratch", "mutual_finetune",
                            "ektf", "cetnet", "distill"}
    assert "no behaviour histories for din" in reasons["alone din"]
    assert "needs two models" in reasons["cetnet"]
    config = CompareConfig(models=["din", "deepfm"], student="deepfm")
    jobs = plan(config, tmp_path, skipped(config, plain.feature_map))
    assert {j.labels["way"] for j in jobs} == {"alone", "distill"}
    histories = stores["multi-hot and history"]
    reasons = skipped(CompareConfig(models=["din", "deepfm"]), histories.feature_map)
    assert list(reasons) == ["alone din without histories"]  # din attends over them
    assert "model 'din' attends over the store's behaviour histories" in \
        reasons["alone din without histories"]
    sizes = skipped(CompareConfig(models=["lr", "dnn"]), plain.feature_map)
    assert list(sizes) == ["ektf"] and "sizes differ" in sizes["ektf"]
    only = skipped(CompareConfig(models=["dnn", "lr"], methods=["distill"]), plain.feature_map)
    assert "add alone to methods" in only["distill"]
    with pytest.raises(ConfigError, match="unknown model 'deepfn'"):
        CompareConfig(models=["deepfn"])
    with pytest.raises(ConfigError, match="seeds: must be >= 1"):
        CompareConfig(seeds=0)


def test_the_estimate_is_member_epochs_over_the_probed_rate(
    stores: dict[str, EncodedStore], tmp_path: Path,
) -> None:
    store = stores["criteo, all categorical"]
    config = CompareConfig(data=str(store.root), models=["dnn", "lr"], seeds=1,
                           methods=["alone", "distill", "mutual_finetune"])
    jobs = plan(config, tmp_path, skipped(config, store.feature_map))
    rates, seconds = estimate(jobs, store, config.train)
    assert set(rates) == {"dnn", "lr"} and all(r > 0 for r in rates.values())
    rows = len(store.split("train"))
    fake = {"dnn": 100.0, "lr": 400.0}
    by_way = {j.labels["way"] + j.labels.get("model", ""): j for j in jobs}
    assert job_seconds(by_way["alonednn"], fake, rows) == pytest.approx(5 * rows / 100)
    assert job_seconds(by_way["distill"], fake, rows) == pytest.approx(
        5 * (rows / 100 + TEACHER_SHARE * (rows / 100 + rows / 400)))
    assert job_seconds(by_way["mutual_finetune"], fake, rows) == pytest.approx(
        1 * (rows / 100 + rows / 400))
    assert len(seconds) == len(jobs) and all(s > 0 for s in seconds)


def test_a_time_budget_replaces_early_stopping_for_every_run_but_the_finetuning_epoch(
    tmp_path: Path,
) -> None:
    config = CompareConfig(data="x", models=["dnn", "lr"], seeds=1, budget_seconds=30,
                           methods=["alone", "mutual_finetune"])
    jobs = {j.labels["way"] + j.labels.get("model", ""): j for j in plan(config, tmp_path, {})}
    train = jobs["alonednn"].config.train
    assert (train.max_seconds, train.epochs, train.early_stopping.patience) == (30, 1000, 1000)
    assert train.early_stopping.restore_best
    tuned = jobs["mutual_finetune"].config.train
    assert (tuned.max_seconds, tuned.epochs) == (0, 1)
    assert job_seconds(jobs["alonednn"], {"dnn": 100.0}, 500) == pytest.approx(30 + 5)


def test_a_store_with_histories_plans_each_model_alone_again_without_them(
    stores: dict[str, EncodedStore], tmp_path: Path,
) -> None:
    store = stores["multi-hot and history"]
    config = CompareConfig(data=str(store.root), models=["din", "dnn", "fm"], seeds=1,
                           methods=["alone", "mutual_scratch"])
    reasons = skipped(config, store.feature_map)
    controls = without_histories(config, store.feature_map, reasons)
    assert controls == {"dnn": ("hist_item",), "fm": ("hist_item",)}
    jobs = plan(config, tmp_path, reasons, controls)
    ways = [(j.labels["way"], j.labels.get("model", "")) for j in jobs]
    assert ways == [("alone", "din"), ("alone", "dnn"), ("alone", "fm"),
                    ("alone_without_histories", "dnn"), ("alone_without_histories", "fm"),
                    ("mutual_scratch", "")]
    control = jobs[3]
    assert control.out == tmp_path / "runs" / "alone_without_histories" / "dnn" / "seed2024"
    assert control.config.model_config == {"exclude_fields": ["hist_item"]}
    assert control.labels["trained"] == ["dnn"]
    assert jobs[1].config.model_config == {}
    # without histories in the store, or without alone runs: no control
    plain = stores["categorical and numeric"]
    plain_config = CompareConfig(models=["dnn", "fm"])
    assert without_histories(plain_config, plain.feature_map,
                             skipped(plain_config, plain.feature_map)) == {}
    no_alone = CompareConfig(models=["dnn", "fm"], methods=["cetnet"])
    assert without_histories(no_alone, store.feature_map,
                             skipped(no_alone, store.feature_map)) == {}
