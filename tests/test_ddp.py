"""`torchrun --nproc_per_node=2 -m mutualctr train` (gloo, CPU) against a single process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.store import EncodedStore
from mutualctr.models.registry import model_names
from mutualctr.runfolders.checkpoint import MANIFEST_FILE
from training_support import (
    SEQUENCE_FEATURE_MAP,
    criteo_categorical_store,
    sequence_split,
    write_store,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def _args(store: Path, out: Path, batch_size: int) -> list[str]:
    return [
        "train", "--data", str(store), "--model", "deepfm", "--out", str(out),
        "--epochs", "2", "--set", f"train.batch_size={batch_size}", "--set", "train.lr=0.01",
        "--set", "train.num_threads=1", "--set", "model_config.hidden_units=[32]",
        "--set", "train.schedule.name=none",
    ]


MUTUALCTR = ("-m", "mutualctr")
TORCHRUN_ENV = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")


def _torchrun_command(
    args: list[str], program: tuple[str, ...] = MUTUALCTR, max_restarts: int = 0,
) -> list[str]:
    """``torchrun --standalone --nproc_per_node=2 PROGRAM ARGS`` on CPU (gloo)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
            f"--max-restarts={max_restarts}", *program, *args]


def _torchrun(args: list[str], program: tuple[str, ...] = MUTUALCTR) -> None:
    proc = subprocess.run(_torchrun_command(args, program), env=TORCHRUN_ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_cpu_processes_reach_single_process_auc(tmp_path: Path) -> None:
    # 5950 rows: the last batch is partial (150 rows in one process; 50 on rank 1 under DDP)
    store = write_store(tmp_path / "store", {"train": 5950, "valid": 1000, "test": 1000})
    float32 = ["--set", "train.amp=false"]
    threads = torch.get_num_threads()
    try:
        # global batch j goes to rank j % 2 and DDP averages the two ranks' gradients, so a
        # step of 2 x 100 rows sees the same rows as a single process's step of 200
        assert main([*_args(store, tmp_path / "single", 200), *float32]) == 0
    finally:
        torch.set_num_threads(threads)
    _torchrun([*_args(store, tmp_path / "ddp", 100), *float32])
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["test"]["deepfm"]["auc"] == pytest.approx(
        single["test"]["deepfm"]["auc"], abs=0.002)
    # the epoch's loss and rows are every rank's: epoch 1's losses are those of the same rows
    # under the same weights (the last step, which differs, updates after its loss)
    first = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0])
             for run in ("single", "ddp")]
    assert [record["train_rows"] for record in first] == [5950, 5950]
    assert first[1]["train_loss"] == pytest.approx(first[0]["train_loss"], rel=1e-6)
    # only rank 0 wrote: one history line per epoch; every test row predicted once, in order
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 2
    with np.load(tmp_path / "ddp" / "test_predictions.npz") as saved:
        labels = np.asarray(EncodedStore.open(store).split("test").label)
        np.testing.assert_array_equal(saved["label"], labels)
        assert saved["pred_deepfm"].shape == labels.shape


@pytest.mark.slow
def test_two_cpu_processes_train_on_an_all_categorical_criteo_store(tmp_path: Path) -> None:
    # the models have no numeric weights there, so DDP finds no parameter without a gradient
    _torchrun(_args(criteo_categorical_store(tmp_path), tmp_path / "ddp", 50))
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["deepfm"]["auc"] <= 1.0


def _numeric_and_sequence_store(tmp_path: Path) -> Path:
    """Categorical, numeric, multi-hot and behaviour-history fields (one sharing the item's
    ids): the store shape of logs with user histories."""
    return write_store(tmp_path / "seq_store", {"train": 400, "valid": 100},
                       SEQUENCE_FEATURE_MAP, sequence_split)


@pytest.mark.slow
@pytest.mark.parametrize("make_store", [criteo_categorical_store,
                                        _numeric_and_sequence_store])
def test_every_registry_model_and_each_methods_group_train_under_ddp_with_identical_ranks(
    tmp_path: Path, make_store: Callable[[Path], Path],
) -> None:
    # one launch trains them all in turn (tests/ddp_registry_driver.py), at their defaults
    results = tmp_path / "results.json"
    _torchrun([str(make_store(tmp_path)), str(results)],
              program=(str(Path(__file__).with_name("ddp_registry_driver.py")),))
    outcome = json.loads(results.read_text())
    assert set(outcome) == {*model_names(), "mutual", "ektf", "cetnet"}
    assert {name: r["error"] for name, r in outcome.items() if r["error"]} == {}
    assert [name for name, r in outcome.items() if not r["same_weights"]] == []


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:  # the process ended meanwhile
            continue
        if stat and int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _rank_pid(torchrun_pid: int, rank: int) -> int | None:
    """The worker of ``rank`` among torchrun's children (by its ``RANK`` variable)."""
    for pid in _children(torchrun_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return pid
    return None


def _has_step_checkpoint(run: Path) -> bool:
    try:
        manifest = json.loads((run / "checkpoints" / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return any(entry["global_step"] > 0 for entry in manifest["checkpoints"])


def _kill_rank_after_step_checkpoint(torchrun: subprocess.Popen, run: Path, rank: int) -> int:
    """SIGKILL ``rank``'s worker as soon as the manifest lists a step checkpoint; its pid."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and torchrun.poll() is None:
        pid = _rank_pid(torchrun.pid, rank) if _has_step_checkpoint(run) else None
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.005)
    raise AssertionError("no step checkpoint was written before torchrun ended")


@pytest.mark.slow
def test_killed_rank_is_restarted_by_torchrun_and_resumes_to_the_uninterrupted_metrics(
    tmp_path: Path,
) -> None:
    store = write_store(tmp_path / "store", {"train": 8000, "valid": 500, "test": 500})

    def args(out: Path) -> list[str]:
        return [*_args(store, out, 50), "--set", "train.checkpoint_every_steps=10",
                "--set", "model_config.dropout=0.2"]

    killed = tmp_path / "killed"
    torchrun = subprocess.Popen(_torchrun_command(args(killed), max_restarts=1),
                                env=TORCHRUN_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        # rank 0 holds the run folder's lock: its restarted successor must take it over
        pid = _kill_rank_after_step_checkpoint(torchrun, killed, rank=0)
        _, stderr = torchrun.communicate(timeout=120)
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    assert torchrun.returncode == 0, stderr[-3000:]
    assert "resuming from" in stderr  # the restarted group went on from a checkpoint
    assert (killed / ".lock").read_text() != str(pid)  # and rank 0's successor took the lock
    _torchrun(args(tmp_path / "whole"))
    # the same batches, RNG states and two-rank sums: bit-identical (docs/reliability.md)
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert json.loads((killed / "metrics.json").read_text()) == whole
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 2
