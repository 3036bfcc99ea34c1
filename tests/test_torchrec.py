"""Embedding tables sharded by TorchRec (``train.sharding``) against ``FeatureEmbedding`` and DDP.

TorchRec is required: without it this module fails to import with the install steps (it is
not skipped, so a missing install cannot pass unnoticed).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mutualctr.distributed.ddp import DistInfo, eval_batch_size, row_slice
from mutualctr.distributed.sharding import TableLayout, require_torchrec
from mutualctr.errors import ConfigError
from mutualctr.models.embedding import FeatureEmbedding
from test_ddp import (
    TORCHRUN_ENV,
    _args,
    _kill_rank_after_step_checkpoint,
    _torchrun,
    _torchrun_command,
)
from training_support import SEQUENCE_FEATURE_MAP, sequence_split, write_store

require_torchrec()

DRIVER = str(Path(__file__).with_name("torchrec_driver.py"))


def test_eval_batch_size_gives_every_rank_as_many_batches() -> None:
    two = DistInfo(0, 2)
    # 9 rows: slices of 4 and 5 rows; batches of 4 would be 1 and 2, of 5 are 1 and 1
    assert eval_batch_size(9, 4, two) == 5
    assert eval_batch_size(13, 3, two) == 4  # slices of 6 and 7: 3 divides 6
    assert eval_batch_size(10, 4, two) == 4  # equal slices
    assert eval_batch_size(9, 4, DistInfo()) == 4  # one process
    for world in (2, 3, 4):
        for rows in range(world, 60):
            split = sequence_split(rows, 0)
            for size in range(1, 9):
                chosen = eval_batch_size(rows, size, DistInfo(0, world))
                counts = {-(-len(row_slice(split, DistInfo(r, world))) // chosen)
                          for r in range(world)}
                assert len(counts) == 1
                # it grew only past sizes that divide the shorter slices' length
                assert all((rows // world) % s == 0 for s in range(size, chosen))


def test_table_layout_gives_a_shared_history_its_items_table() -> None:
    layout = TableLayout.of(FeatureEmbedding(SEQUENCE_FEATURE_MAP, 4))
    # user, item, hour and tags have 12 rows each; hist_item's 6 positions read item's table
    assert layout == TableLayout(starts=(0, 12, 24, 36), rows=(12, 12, 12, 12),
                                 position_tables=(0, 1, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1))


def test_torchrec_that_does_not_load_stops_with_the_install_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load = importlib.import_module

    def broken(name: str, *args: object) -> object:
        if name == "torchrec":
            raise ImportError("fbgemm_gpu_py.so: undefined symbol")
        return load(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ConfigError, match=r"undefined symbol.*pip install --no-deps "
                                          r"torchrec==1\.8\.0"):
        require_torchrec()


def _sequence_store(root: Path, train_rows: int, eval_rows: int = 300) -> Path:
    return write_store(root, {"train": train_rows, "valid": eval_rows, "test": eval_rows},
                       SEQUENCE_FEATURE_MAP, sequence_split)


@pytest.mark.slow
def test_sharded_models_and_groups_look_up_as_feature_embedding_and_train_as_under_ddp(
    tmp_path: Path,
) -> None:
    # one launch checks both plans for DIN, DeepFM and the mutual, EKTF and CETNet groups
    results = tmp_path / "results.json"
    _torchrun([str(_sequence_store(tmp_path / "store", 600)), str(results)], program=(DRIVER,))
    outcome = json.loads(results.read_text())
    assert set(outcome) == {"table_wise", "row_wise"}
    for plan, cases in outcome.items():
        assert set(cases) == {"din", "deepfm", "mutual", "ektf", "cetnet"}, plan
        for case, result in cases.items():
            lookup, training = result["lookup"], result["training"]
            # the same rows, pooled by the same code: bit-identical
            assert lookup == {"logits": 0.0, "logits_after_load": 0.0, "same_keys": True,
                              "state": 0.0, "grad_norm": pytest.approx(0.0, abs=1e-6)}, case
            # 4 Adam steps at lr 0.01: only summation order differs (measured <= 1.8e-5)
            assert training["weights"] < 1e-4 and training["auc"] < 1e-6, (plan, case)


@pytest.mark.slow
def test_a_sharded_run_matches_ddp_and_its_run_folder_loads_without_torchrec(
    tmp_path: Path,
) -> None:
    # Partial batches where ranks differ: 40 training batches of 100 with the last of 50 (on
    # rank 1 only), and 301 evaluation rows, slices of 150 and 151 (last batches 50 and 51)
    store = _sequence_store(tmp_path / "store", 3950, eval_rows=301)
    # float32: bfloat16 autocast (the default on CPUs that have it) rounds the two runs'
    # different summation orders to differences far above float32's
    float32 = ["--set", "train.amp=false"]
    _torchrun([*_args(store, tmp_path / "ddp", 100), *float32])
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    expected = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)["members"]["deepfm"]
    for plan in ("table_wise", "row_wise"):
        sharded = tmp_path / plan
        _torchrun([*_args(store, sharded, 100), *float32, "--set", f"train.sharding={plan}"])
        metrics = json.loads((sharded / "metrics.json").read_text())
        assert metrics["test"]["deepfm"] == pytest.approx(ddp["test"]["deepfm"], abs=1e-6)
        weights = torch.load(sharded / "model.pt", weights_only=True)["members"]["deepfm"]
        assert sorted(weights) == sorted(expected)  # FeatureEmbedding's single table
        assert max(float((weights[k] - expected[k]).abs().max()) for k in weights) < 1e-4, plan
    blocked = ("import sys; sys.modules['torchrec'] = None; from mutualctr.cli import main; "
               f"sys.exit(main(['evaluate', {str(sharded)!r}, '--splits', 'test']))")
    proc = subprocess.run([sys.executable, "-c", blocked], env=TORCHRUN_ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads(proc.stdout)["test"]["deepfm"]
    assert evaluated["auc"] == pytest.approx(metrics["test"]["deepfm"]["auc"], abs=1e-9)


@pytest.mark.slow
def test_killed_rank_of_a_sharded_run_is_restarted_and_resumes_to_the_uninterrupted_metrics(
    tmp_path: Path,
) -> None:
    store = _sequence_store(tmp_path / "store", 8000)

    def args(out: Path) -> list[str]:
        return [*_args(store, out, 50), "--set", "train.checkpoint_every_steps=10",
                "--set", "model_config.dropout=0.2", "--set", "train.sharding=table_wise"]

    killed = tmp_path / "killed"
    torchrun = subprocess.Popen(_torchrun_command(args(killed), max_restarts=1),
                                env=TORCHRUN_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        _kill_rank_after_step_checkpoint(torchrun, killed, rank=1)
        _, stderr = torchrun.communicate(timeout=180)
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    assert torchrun.returncode == 0, stderr[-3000:]
    assert "resuming from" in stderr
    _torchrun(args(tmp_path / "whole"))
    # every rank's shards, their Adam moments and RNG state come back: bit-identical
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert json.loads((killed / "metrics.json").read_text()) == whole
