"""`torchrun --nproc_per_node=2 -m mutualctr train` (gloo, CPU) against a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.prepare import prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.store import EncodedStore
from mutualctr.data.synthetic import generate_criteo_synthetic
from training_support import write_store

SRC = Path(__file__).resolve().parents[1] / "src"


def _args(store: Path, out: Path, batch_size: int) -> list[str]:
    return [
        "train", "--data", str(store), "--model", "deepfm", "--out", str(out),
        "--epochs", "2", "--set", f"train.batch_size={batch_size}", "--set", "train.lr=0.01",
        "--set", "train.num_threads=1", "--set", "model_config.hidden_units=[32]",
        "--set", "train.schedule.name=none",
    ]


def _torchrun(args: list[str]) -> None:
    """``torchrun --standalone --nproc_per_node=2 -m mutualctr ARGS`` on CPU (gloo)."""
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--standalone", "-m", "mutualctr", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_cpu_processes_reach_single_process_auc(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", {"train": 6000, "valid": 1000, "test": 1000})
    threads = torch.get_num_threads()
    try:
        # global batch j goes to rank j % 2 and DDP averages the two ranks' gradients, so a
        # step of 2 x 100 rows sees the same rows as a single process's step of 200
        assert main(_args(store, tmp_path / "single", 200)) == 0
    finally:
        torch.set_num_threads(threads)
    _torchrun(_args(store, tmp_path / "ddp", 100))
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["test"]["deepfm"]["auc"] == pytest.approx(
        single["test"]["deepfm"]["auc"], abs=0.002)
    # only rank 0 wrote: one history line per epoch; every test row predicted once, in order
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2
    with np.load(tmp_path / "ddp" / "test_predictions.npz") as saved:
        labels = np.asarray(EncodedStore.open(store).split("test").label)
        np.testing.assert_array_equal(saved["label"], labels)
        assert saved["pred_deepfm"].shape == labels.shape


@pytest.mark.slow
def test_two_cpu_processes_train_on_an_all_categorical_criteo_store(tmp_path: Path) -> None:
    # Criteo's default encoding makes every field categorical: the models have no numeric
    # weights, so DDP finds no parameter without a gradient
    raw = tmp_path / "raw.txt"
    generate_criteo_synthetic(raw, 1000, seed=0)
    store = prepare([raw], tmp_path / "store", "criteo",
                    reader_options=ReaderOptions(min_count=2)).store
    assert not store.feature_map.numeric
    _torchrun(_args(store.root, tmp_path / "ddp", 50))
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["deepfm"]["auc"] <= 1.0
