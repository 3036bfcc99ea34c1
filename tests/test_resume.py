"""Reliability of runs: kill-and-resume equality, safe checkpoints, locks, config guards,
non-finite guard, unwritable folders and full disks (docs/reliability.md lists them)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mutualctr.cli import main
from mutualctr.config import TrainConfig, from_dict
from mutualctr.data.batch import Batch
from mutualctr.models.base import ModelOutput
from mutualctr.training import checkpoint
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.runfolder import RunFolder, RunFolderError
from mutualctr.training.trainer import NonFiniteError, fit
from training_support import synthetic_split, tiny_model, write_store

ROWS = {"train": 1000, "valid": 300, "test": 300}
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("store"), ROWS)


@pytest.fixture()
def one_thread() -> None:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _kill_mid_epoch(cmd: list[str], run: Path, epoch: int) -> None:
    """Start ``cmd``; SIGKILL it as soon as a mid-epoch checkpoint of ``epoch`` (0-based) exists."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{Path(__file__).parent}")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    where = run / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                at = json.loads(where.read_text())
            except (OSError, ValueError):
                at = None
            if at and at["epoch"] == epoch and at["step_in_epoch"] > 0:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (run / "metrics.json").exists()


def _train_args(store: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(store), "--model", "deepfm", "--out", str(out), "--epochs", "2",
        "--set", "train.batch_size=10", "--set", "train.checkpoint_every_steps=20",
        "--set", "train.num_threads=1", "--set", "model_config.hidden_units=[32,32]",
        "--set", "model_config.dropout=0.2", "--set", "train.schedule.name=exponential",
    ]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_equals_uninterrupted(
    store: Path, tmp_path: Path, one_thread: None
) -> None:
    assert main(_train_args(store, tmp_path / "straight")) == 0
    killed = tmp_path / "killed"
    _kill_mid_epoch([sys.executable, "-m", "mutualctr", *_train_args(store, killed)], killed, 1)
    assert main(_train_args(store, killed)) == 0  # the same command resumes
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    for split in ("valid", "test"):
        for metric in ("auc", "logloss"):
            assert resumed[split]["deepfm"][metric] == pytest.approx(
                straight[split]["deepfm"][metric], abs=1e-6)
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


GROUP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from training_support import tiny_model, synthetic_split
    from mutualctr.config import TrainConfig, from_dict
    from mutualctr.training.groups.base import ModelGroup
    from mutualctr.training.objectives.mutual import MutualObjective
    from mutualctr.training.runfolder import RunFolder
    from mutualctr.training.trainer import fit

    def run(out):
        config = from_dict(TrainConfig, {
            "epochs": 2, "batch_size": 10, "lr": 0.01, "checkpoint_every_steps": 20,
            "num_threads": 1, "schedule": {"name": "exponential"},
        })
        names = ["m0", "m1"]
        group = ModelGroup([tiny_model(i) for i in range(2)], names)
        with RunFolder.open(out, {"group": names}) as folder:
            return fit(group, MutualObjective(names), synthetic_split(1000, 0),
                       synthetic_split(300, 1), config, folder, synthetic_split(300, 2))

    if __name__ == "__main__":
        run(Path(sys.argv[1]))
    """
)


@pytest.mark.slow
def test_sigkill_mutual_learning_group_then_resume(tmp_path: Path, one_thread: None) -> None:
    script = tmp_path / "group_run.py"
    script.write_text(GROUP_SCRIPT)
    sys.path.insert(0, str(tmp_path))
    try:
        import group_run
    finally:
        sys.path.remove(str(tmp_path))
    straight = group_run.run(tmp_path / "straight").metrics
    killed = tmp_path / "killed"
    _kill_mid_epoch([sys.executable, str(script), str(killed)], killed, 0)
    resumed = group_run.run(killed).metrics
    assert set(resumed["test"]) == {"m0", "m1", "ensemble"}
    for split in ("valid", "test"):
        for name, values in straight[split].items():
            for metric, value in values.items():
                assert resumed[split][name][metric] == pytest.approx(value, abs=1e-6)


def test_crafted_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "last.pt"
    torch.save({"epoch": 1, "payload": Exploit()}, path)
    with pytest.raises(checkpoint.CheckpointError, match="refusing to load"):
        checkpoint.load(path)
    assert not marker.exists()


def test_second_job_on_a_run_folder_is_refused_and_stale_lock_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunFolder.open(run, {"a": 1}), pytest.raises(
        RunFolderError, match=f"in use by process {os.getpid()}"
    ):
        RunFolder.open(run, {"a": 1})
    # a lock file left by a dead process (no flock held) does not block
    (run / ".lock").write_text("999999")
    with RunFolder.open(run, {"a": 1}):
        assert (run / ".lock").read_text() == str(os.getpid())


def test_other_config_refused_unless_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunFolder.open(run, {"train": {"lr": 0.001}}):
        (run / "metrics.json").write_text("{}")
    with pytest.raises(RunFolderError, match=r"train\.lr: 0\.001 -> 0\.01.*--overwrite"):
        RunFolder.open(run, {"train": {"lr": 0.01}})
    with RunFolder.open(run, {"train": {"lr": 0.01}}, overwrite=True):
        assert not (run / "metrics.json").exists()


def test_unwritable_output_folder_reported_before_training(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--data", str(store), "--model", "lr", "--out",
                 str(blocker / "run")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": torch.tensor(1)}, path)

    def full_disk(obj: object, handle: object) -> None:
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(checkpoint.CheckpointError, match="No space left"):
        checkpoint.save_atomic({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert int(checkpoint.load(path)["step"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Exploding(torch.nn.Module):
    """Wraps a model; from the ``at``-th training call on its logits are NaN."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.inner, self.at, self.calls = tiny_model(0), at, 0

    def forward(self, batch: Batch) -> ModelOutput:
        out = self.inner(batch)
        if self.training:
            self.calls += 1
            if self.calls >= self.at:
                out.logit = out.logit * float("nan")
        return out


def test_non_finite_loss_stops_naming_step_and_model(tmp_path: Path) -> None:
    config = from_dict(TrainConfig, {"epochs": 1, "batch_size": 100,
                                     "checkpoint_every_steps": 5})
    group = ModelGroup([tiny_model(1), _Exploding(at=8)], ["good", "bad"])
    with RunFolder.open(tmp_path / "run", {"x": 1}) as run, pytest.raises(NonFiniteError) as err:
        fit(group, IndependentObjective(["good", "bad"]), synthetic_split(2000, 0),
            synthetic_split(200, 1), config, run)
    message = str(err.value)
    assert "epoch 1, batch 8 (global step 8)" in message
    assert "model 'bad' produced non-finite logits" in message
    assert "'good'" not in message
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["global_step"] == 5
    assert all(torch.isfinite(v).all() for v in state["group"].values())


def test_non_finite_gradient_names_the_member_and_parameter() -> None:
    bad = tiny_model(1)
    bad.mlp[0].weight.register_hook(lambda grad: grad * float("inf"))
    group = ModelGroup([tiny_model(0), bad], ["good", "bad"])
    before = {k: v.clone() for k, v in group.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"non-finite gradient at epoch 1, batch 1 .*"
                       r"parameter 'bad: mlp\.0\.weight'"):
        fit(group, IndependentObjective(["good", "bad"]), synthetic_split(300, 0),
            synthetic_split(100, 1), from_dict(TrainConfig, {"batch_size": 100}))
    for key, value in group.state_dict().items():  # stopped before the update
        torch.testing.assert_close(value, before[key])
