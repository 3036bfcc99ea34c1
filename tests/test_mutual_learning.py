"""Mutual learning runs: finetuning from pretrained run folders, scratch groups, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.methods import runner
from mutualctr.methods.members import MemberConfig
from mutualctr.methods.mutual import METHOD, MutualConfig, build_group, build_members, resolve
from mutualctr.metrics import relaimp
from mutualctr.models.registry import build_model
from mutualctr.runfolders.folder import read_weights
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.trainer import seed_everything
from training_support import write_store

SMALL = {"hidden_units": [8], "embedding_dim": 4}


def fast_train(**kw: object) -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=200, num_threads=1, log_every_steps=1000, **kw)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("mutual")
    store = write_store(root / "data", {"train": 1000, "valid": 400, "test": 400})
    runs = []
    for seed in (1, 2):
        config = MutualConfig(
            data=str(store), members=[MemberConfig(model="deepfm", model_config=SMALL)],
            objective="independent", train=fast_train(seed=seed),
        )
        runner.run(METHOD, config, root / f"deepfm{seed}")
        runs.append(root / f"deepfm{seed}")
    return store, runs


def test_finetuning_starts_from_exactly_the_pretrained_weights(
    pretrained: tuple[Path, list[Path]],
) -> None:
    store, runs = pretrained
    config = resolve(MutualConfig(
        data=str(store), members=[MemberConfig(init=str(r)) for r in runs]
    ))
    assert [m.name for m in config.members] == ["deepfm_1", "deepfm_2"]
    models = build_members(config, EncodedStore.open(store))
    group = build_group(models, [m.name for m in config.members], batched=True)
    assert isinstance(group, BatchedModelGroup)
    for i, run in enumerate(runs):
        saved = read_weights(run)["members"]["deepfm"]
        for key, value in saved.items():
            assert torch.equal(models[i].state_dict()[key], value)
            assert torch.equal(group.member_state_dict(i)[key], value)


def test_scratch_members_are_initialised_like_independent_runs_with_their_seeds(
    pretrained: tuple[Path, list[Path]],
) -> None:
    store, _ = pretrained
    config = resolve(MutualConfig(
        data=str(store),
        members=[MemberConfig(model="deepfm", model_config=SMALL),
                 MemberConfig(model="dcn", model_config=SMALL)],
        train=TrainConfig(seed=7),
    ))
    assert [m.name for m in config.members] == ["deepfm", "dcn"]
    models = build_members(config, EncodedStore.open(store))
    seed_everything(8)
    alone = build_model("dcn", EncodedStore.open(store).feature_map, SMALL)
    for key, value in alone.state_dict().items():
        assert torch.equal(models[1].state_dict()[key], value)
    assert isinstance(build_group(models, ["deepfm", "dcn"], batched=True), ModelGroup)


def test_cli_finetune_reports_members_ensemble_and_relaimp(
    pretrained: tuple[Path, list[Path]], tmp_path: Path,
) -> None:
    store, runs = pretrained
    out = tmp_path / "mutual"
    code = main(["mutual", "--data", str(store), "--init", *map(str, runs), "--out", str(out),
                 "--set", "train.batch_size=200", "--set", "train.num_threads=1"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"deepfm_1", "deepfm_2", "ensemble"}
    config = (out / "config.yaml").read_text()
    assert "lr: 0.0007" in config and "epochs: 1" in config
    for i, run in enumerate(runs, start=1):
        start = json.loads((run / "metrics.json").read_text())["test"]["deepfm"]["auc"]
        assert metrics["init"][f"deepfm_{i}"]["test"] == start
        got = metrics["relaimp"][f"deepfm_{i}"]["test"]
        assert got == pytest.approx(relaimp(metrics["test"][f"deepfm_{i}"]["auc"], start))


def test_bad_member_lists_are_config_errors(pretrained: tuple[Path, list[Path]]) -> None:
    store, runs = pretrained
    with pytest.raises(ConfigError, match="at least 2"):
        resolve(MutualConfig(data=str(store), members=[MemberConfig(model="dcn")]))
    with pytest.raises(ConfigError, match="has no model"):
        resolve(MutualConfig(
            data=str(store), members=[MemberConfig(init=f"{runs[0]}:nope")] * 2
        ))
    assert main(["mutual", "--data", str(store), "--out", "/tmp/unused-mutual-run"]) == 2
