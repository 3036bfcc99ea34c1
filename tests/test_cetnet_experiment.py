"""CETNet end to end: groups and ablations, the experiment's plan, a tiny run and its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.config import TrainConfig
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.experiments.cetnet import (
    CETNetExperimentConfig,
    group_ids,
    load_records,
    plan,
    run_experiment,
)
from mutualctr.methods.cetnet import ABLATIONS, Variant
from mutualctr.methods.cetnet import build_cetnet as build_built
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup
from training_support import FEATURE_MAP, write_store

SMALL = {"dnn": {"hidden_units": [8]}, "pnn": {"hidden_units": [8]}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("cetnet") / "data",
                       {"train": 800, "valid": 300, "test": 400})


def build_cetnet(*args: object, **kwargs: object) -> tuple:
    built = build_built(*args, **kwargs)
    return built.group, built.objective


def small_config(store: Path, **kw: object) -> CETNetExperimentConfig:
    train = TrainConfig(epochs=1, batch_size=200, lr=0.02, num_threads=1, log_every_steps=1000)
    values = {"data": str(store), "scaling_models": ("dnn",), "scales": (2,),
              "pairs": ("dnn+pnn",), "embedding_dim": 4, "group_field": "a",
              "model_config": SMALL, "train": train, **kw}
    return CETNetExperimentConfig(**values)


def test_each_model_has_its_own_table_unless_shared() -> None:
    group, objective = build_cetnet(FEATURE_MAP, ["dnn", "pnn"], embedding_dim=4, alpha=0.5,
                                    overrides=SMALL)
    tables = [m.embedding.table.weight for m in group.models]
    assert tables[0].data_ptr() != tables[1].data_ptr()
    assert objective.member_names == ["dnn_1", "pnn_2"]
    shared, _ = build_cetnet(FEATURE_MAP, ["dnn", "pnn"], embedding_dim=4, alpha=0.5,
                             variant=Variant("x", shared_embedding=True), overrides=SMALL)
    assert isinstance(shared, SharedEmbeddingGroup)
    with pytest.raises(ConfigError, match="two models"):
        build_cetnet(FEATURE_MAP, ["dnn"], embedding_dim=4, alpha=0.1)


def test_ablation_variants_set_their_objective() -> None:
    by_label = {v.label: v for v in ABLATIONS}
    _, no_kl = build_cetnet(FEATURE_MAP, ["dnn", "dnn"], embedding_dim=4, alpha=0.5,
                            variant=by_label["w/o KL"], overrides=SMALL)
    assert no_kl.alpha == 0.0
    _, concat = build_cetnet(FEATURE_MAP, ["dnn", "dnn"], embedding_dim=4, alpha=0.5,
                             variant=by_label["ME + concat"], overrides=SMALL)
    assert (concat.fusion.mode, concat.alpha, concat.member_losses) == ("concat", 0.0, False)
    _, no_sg = build_cetnet(FEATURE_MAP, ["dnn", "dnn"], embedding_dim=4, alpha=0.5,
                            variant=by_label["w/o stop-gradient"], overrides=SMALL)
    assert not no_sg.fusion.stop_gradient


def test_plan_covers_both_tables_and_runs_each_single_model_once(store: Path) -> None:
    jobs = plan(small_config(store, scales=(2, 3)))
    opened = EncodedStore.open(store)

    def build(key: str) -> tuple:
        job = next(j for j in jobs if j.key == key)
        built = job.method.build(job.config, opened)
        return built.group, built.objective

    keys = [j.key for j in jobs]
    assert len(keys) == len(set(keys))
    assert {"single/dnn", "single/pnn", "scaling/dnn/se_2x", "scaling/dnn/me_3x",
            "scaling/dnn/cetnet_3x"} <= set(keys)
    assert sum(j.table == "ablation" and j.key.startswith("ablation/") for j in jobs) == len(
        ABLATIONS)
    group, objective = build("scaling/dnn/cetnet_3x")
    assert len(group.models) == 3 and objective.monitor == "fused"
    se, _ = build("scaling/dnn/se_2x")
    assert se.models[0].config.embedding_dim == 8
    me, _ = build("scaling/dnn/me_3x")
    assert len(me.models[0].embedding.tables) == 3


def test_tiny_experiment_writes_both_tables(store: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = small_config(store)
    text = run_experiment(config, tmp_path, log=lambda _: None)
    records = load_records(tmp_path)
    assert len(records) == len(plan(config))
    assert "## Scaling (Table 4 layout): auc" in text and "## Ablation (Table 3 layout)" in text
    assert "| DNN |" in text and "| w/o stop-gradient |" in text
    cetnet = next(r for r in records if r["key"] == "ablation/dnn+pnn/cetnet")
    assert set(cetnet["test"]) == {"fused", "dnn_1", "pnn_2"}
    fused = cetnet["test"]["fused"]
    assert fused["auc"] > 0.6  # the synthetic clicks are learnable
    assert 0.5 < fused["gauc"] <= 1.0
    assert (tmp_path / "results.csv").read_text().count("\n") >= len(records)
    weights = tmp_path / "runs" / "ablation" / "dnn+pnn" / "cetnet" / "seed_2024" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    assert run_experiment(config, tmp_path, log=lambda _: None) == text  # scored runs are kept
    assert weights.stat().st_mtime_ns == stamp


def test_group_ids_are_the_test_split_column(store: Path) -> None:
    opened = EncodedStore.open(store)
    ids = group_ids(opened, "a")
    np.testing.assert_array_equal(ids, opened.split("test").categorical[:, 0])
    assert group_ids(opened, "auto") is None  # no field called "user"
    with pytest.raises(ConfigError, match="group_field"):
        group_ids(opened, "nope")


def test_cli_trains_one_group(store: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cetnet", "--data", str(store), "--models", "dnn", "dnn", "--out",
                 str(tmp_path / "run"), "--embedding-dim", "4", "--alpha", "0.5",
                 "--set", "train.epochs=1", "--set", "train.batch_size=200",
                 "--set", "train.num_threads=1", "--set", "group_field=a",
                 "--set", "model_config={dnn: {hidden_units: [8]}}"])
    assert code == 0
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["monitor"] == "fused"
    printed = json.loads(capsys.readouterr().out)["test"]
    assert set(printed) == {"fused", "dnn_1", "dnn_2"}
    assert printed["fused"] == record["test"]["fused"]
