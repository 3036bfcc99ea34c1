"""Sequence models in every method: groups that mix behaviour-sequence models (DIN, DIEN,
InterFormer) with models that pool the history train by mutual learning, EKTF and CETNet from
the command line, on a store whose history shares the item's ids, and each run folder rebuilds
and predicts as trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.store import EncodedStore
from mutualctr.runfolders.folder import PREDICTIONS_FILE
from mutualctr.runfolders.restore import load_trained
from mutualctr.training.trainer import predict_split
from training_support import SEQUENCE_FEATURE_MAP, sequence_split, write_store

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["--set", "train.batch_size=256", "--set", "train.lr=0.005", "--epochs", "2",
         "--set", "train.num_threads=1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("seq") / "store",
                       {"train": 3000, "valid": 600, "test": 600}, SEQUENCE_FEATURE_MAP,
                       sequence_split)


@pytest.mark.parametrize("command", [
    ["mutual", "--models", "din", "dnn"],
    ["cetnet", "--models", "dien", "deepfm", "--embedding-dim", "8"],
    ["ektf", "--students", "din", "dnn", "--embedding-dim", "8"],
    ["cetnet", "--models", "interformer", "dcnv2", "--embedding-dim", "8"],
])
def test_a_group_mixing_sequence_and_pooled_models_trains_in_each_method(
    store: Path, tmp_path: Path, command: list[str],
) -> None:
    out = tmp_path / "run"
    assert main([*command, "--data", str(store), "--out", str(out), *SMALL]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test"]) >= 2
    # the click depends on whether the item is in the history: every member learns some of it
    assert all(m["auc"] > 0.55 for m in metrics["test"].values()), metrics["test"]
    trained = load_trained(out)
    again = predict_split(trained.group, trained.objective,
                          EncodedStore.open(store).split("test"), 512, torch.device("cpu"))
    saved = np.load(out / PREDICTIONS_FILE)
    for name, values in again.items():
        np.testing.assert_allclose(values, saved[f"pred_{name}"], atol=1e-5)
