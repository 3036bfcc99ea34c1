"""Reliability of runs: kill-and-resume equality, safe checkpoints, locks, config guards,
non-finite guard, unwritable folders and full disks (docs/reliability.md lists them)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from full_disk import FsyncFails, open_filling_up, temporary_files
from mutualctr.cli import main
from mutualctr.config import from_dict
from mutualctr.data.batch import Batch
from mutualctr.errors import MutualCTRError
from mutualctr.models.base import ModelOutput
from mutualctr.runfolders import checkpoint
from mutualctr.runfolders.checkpoint import MANIFEST_FILE, CheckpointDir
from mutualctr.runfolders.folder import RunFolder, RunFolderError
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.trainer import FitResult, NonFiniteError, Trainer, fit
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


def _manifest(run: Path) -> dict:
    return json.loads((run / "checkpoints" / MANIFEST_FILE).read_text())


def _newest_checkpoint(run: Path) -> dict | None:
    """The manifest's newest entry (epoch, step_in_epoch, global_step, file, ...), if any."""
    try:
        return _manifest(run)["checkpoints"][-1]
    except (OSError, ValueError, IndexError):
        return None


def _kill_mid_epoch(cmd: list[str], run: Path, epoch: int) -> None:
    """Start ``cmd``; SIGKILL it as soon as a mid-epoch checkpoint of ``epoch`` (0-based) exists."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{Path(__file__).parent}")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            at = _newest_checkpoint(run)
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
    from mutualctr.config import from_dict
    from mutualctr.training.config import TrainConfig
    from mutualctr.training.groups.base import ModelGroup
    from mutualctr.training.objectives.mutual import MutualObjective
    from mutualctr.runfolders.folder import RunFolder
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
    # the file takes 100 bytes, then every write fails: torch.save reports that as a
    # RuntimeError ("unexpected pos"), and the real cause must still reach the user
    monkeypatch.setattr(checkpoint, "open", open_filling_up(100), raising=False)
    state = {"step": torch.tensor(2), "weights": torch.zeros(1000)}
    with pytest.raises(checkpoint.CheckpointError, match=re.escape(
            f"cannot write {path}: No space left on device (needs at least 4008 bytes, ")):
        checkpoint.save_atomic(state, path)
    monkeypatch.undo()
    assert int(checkpoint.load(path)["step"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


TRAIN = {"epochs": 2, "batch_size": 20, "lr": 0.01, "checkpoint_every_steps": 10,
         "num_threads": 1, "keep_checkpoints": 2, "schedule": {"name": "exponential"}}


def _fit(kind: str, out: Path, log: io.StringIO | None = None) -> FitResult:
    """A run with checkpoints at steps 0, 10, 20, 30 (end of epoch 1), 40, 50, 60 (end)."""
    names = ["m0"] if kind == "single" else ["m0", "m1"]
    objective = IndependentObjective(names) if kind == "single" else MutualObjective(names)
    group = ModelGroup([tiny_model(i) for i in range(len(names))], names)
    with RunFolder.open(out, {"kind": kind}) as folder:
        return fit(group, objective, synthetic_split(600, 0), synthetic_split(200, 1),
                   from_dict(TrainConfig, TRAIN), folder, synthetic_split(200, 2), log=log)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FitResult]:
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("uninterrupted")
    results = {kind: _fit(kind, root / kind) for kind in ("single", "mutual")}
    torch.set_num_threads(before)
    return results


def _assert_same_metrics(result: FitResult, expected: FitResult) -> None:
    for split, by_name in expected.metrics.items():
        for name, values in by_name.items():
            for metric, value in values.items():
                assert result.metrics[split][name][metric] == pytest.approx(value, abs=1e-6)


class _KilledError(Exception):
    """Stands for a SIGKILL right after a checkpoint."""


def _kill_after_checkpoints(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    save = Trainer.save_checkpoint
    saved = []

    def save_then_die(self: Trainer, best: bool = False) -> None:
        save(self, best)
        saved.append(self.global_step)
        if len(saved) == count:
            raise _KilledError

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)


def _assert_checkpoints_match_manifest(run: Path) -> None:
    """Exactly the recorded checkpoints are on disk, each with its recorded size and sha256."""
    manifest = _manifest(run)
    recorded = {e["file"]: e for e in manifest["checkpoints"]}
    assert {p.name for p in (run / "checkpoints").glob("step-*.pt")} == set(recorded)
    for name, entry in recorded.items():
        data = (run / "checkpoints" / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
    assert temporary_files(run) == []


@pytest.mark.parametrize("kind", ["single", "mutual"])
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(
    kind: str, uninterrupted: dict[str, FitResult], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, one_thread: None,
) -> None:
    run = tmp_path / "run"
    _kill_after_checkpoints(monkeypatch, 6)  # killed right after the checkpoint of step 50
    with pytest.raises(_KilledError):
        _fit(kind, run)
    monkeypatch.undo()
    manifest = _manifest(run)  # the newest 2, and the best (end of epoch 1)
    assert [e["global_step"] for e in manifest["checkpoints"]] == [30, 40, 50]
    assert manifest["best"] == "step-000000030.pt"
    newest = run / "checkpoints" / "step-000000050.pt"
    half = newest.stat().st_size // 2
    newest.write_bytes(newest.read_bytes()[:half])
    log = io.StringIO()
    resumed = _fit(kind, run, log)
    assert f"warning: checkpoint {newest} is damaged ({half} bytes, " in log.getvalue()
    assert f"falling back to {run / 'checkpoints' / 'step-000000040.pt'}" in log.getvalue()
    # training is deterministic: resuming at step 40 ends as the uninterrupted run
    _assert_same_metrics(resumed, uninterrupted[kind])
    _assert_checkpoints_match_manifest(run)
    manifest = _manifest(run)
    best = next(e for e in manifest["checkpoints"] if e["file"] == manifest["best"])
    assert (best["epoch"], best["step_in_epoch"]) == (max(resumed.best_epochs.values()), 0)
    assert len(manifest["checkpoints"]) <= TRAIN["keep_checkpoints"] + 1


def test_every_checkpoint_damaged_is_an_error_naming_each(tmp_path: Path) -> None:
    folder = CheckpointDir(tmp_path)
    for step in (1, 2, 3):
        where = {"epoch": 0, "step_in_epoch": step, "global_step": step}
        folder.save({"step": torch.tensor(step)}, where, best=step == 1, keep=1)
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == [
        "step-000000001.pt", "step-000000003.pt"]  # the newest and the best
    assert int(folder.load_newest_intact().state["step"]) == 3
    (tmp_path / "step-000000003.pt").write_bytes(b"junk")
    best = tmp_path / "step-000000001.pt"
    data = bytearray(best.read_bytes())
    data[-30] ^= 0xFF  # same size, other bytes
    best.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match=(
            r"step-000000003\.pt is damaged \(4 bytes, \d+ recorded\); .*"
            r"step-000000001\.pt is damaged \(sha256 differs from the recorded one\): "
            r"no intact checkpoint")):
        folder.load_newest_intact()


def test_run_folder_made_before_kept_checkpoints_is_accepted_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = {"train": {"lr": 0.01, "keep_checkpoints": 2}}
    with RunFolder.open(run, config):
        pass
    # the earlier layout: no keep_checkpoints setting, one unrecorded checkpoint
    (run / "config.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.01}}))
    checkpoint.save_atomic({"step": torch.tensor(7)}, run / "checkpoints" / "last.pt")
    (run / "checkpoints" / "last.json").write_text("{}")
    with RunFolder.open(run, config) as folder:
        assert int(folder.checkpoints.load_newest_intact().state["step"]) == 7
        where = {"epoch": 0, "step_in_epoch": 8, "global_step": 8}
        folder.write_checkpoint({"step": torch.tensor(8)}, where, best=False, keep=2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        MANIFEST_FILE, "step-000000008.pt"]


def test_a_group_run_made_before_exclude_fields_holds_the_same_run(tmp_path: Path) -> None:
    """Model settings added later are read at their defaults in every member's model_config
    too, so the folder of a mutual run made before is the same run, and a different value
    is still a different run."""
    members = [{"name": name, "model": name, "model_config": {"embedding_dim": 4}}
               for name in ("deepfm", "dcn")]
    now = {"method": "mutual", "members": [
        {**m, "model_config": {**m["model_config"], "exclude_fields": []}} for m in members]}
    run = tmp_path / "run"
    with RunFolder.open(run, now):
        pass
    (run / "config.yaml").write_text(yaml.safe_dump({"method": "mutual", "members": members}))
    with RunFolder.open(run, now):
        pass
    other = {"method": "mutual", "members": [
        {**m, "model_config": {**m["model_config"], "exclude_fields": ["C1"]}} for m in members]}
    with pytest.raises(RunFolderError, match=r"different config \(members: .*'exclude_fields': "
                                             r"\['C1'\]"), RunFolder.open(run, other):
        pass


# (file name prefix, suffix, which write of it fails): a checkpoint, the manifest, the
# history of epoch 2, the final weights, the test predictions, metrics.json
WRITE_SITES = [("step-", ".pt", 3), ("manifest", ".json", 3), ("metrics", ".jsonl", 2),
               ("model", ".pt", 1), ("test_predictions", ".npz", 1), ("metrics", ".json", 1)]


@pytest.mark.parametrize(("prefix", "suffix", "at"), WRITE_SITES,
                         ids=[f"{p}{s}" for p, s, _ in WRITE_SITES])
def test_full_disk_at_each_run_folder_write_keeps_the_previous_file_and_resumes(
    prefix: str, suffix: str, at: int, uninterrupted: dict[str, FitResult], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, one_thread: None,
) -> None:
    run = tmp_path / "run"
    failed = FsyncFails(monkeypatch, prefix, suffix, at)
    with pytest.raises(MutualCTRError) as err:
        _fit("single", run)
    monkeypatch.undo()
    assert failed.target is not None
    assert re.search(re.escape(f"cannot write {failed.target}: No space left on device (needs "
                               "at least ") + r"\d+ bytes, \d+ bytes free\)", str(err.value))
    now = failed.target.read_bytes() if failed.target.exists() else None
    assert now == failed.before  # the previous file (or none) is untouched
    assert not (run / "metrics.json").exists()  # the run is not taken as finished
    _assert_checkpoints_match_manifest(run)
    _assert_same_metrics(_fit("single", run), uninterrupted["single"])


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
    state = checkpoint.load(tmp_path / "run" / "checkpoints" / _newest_checkpoint(
        tmp_path / "run")["file"])
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
            synthetic_split(100, 1), from_dict(TrainConfig, {"batch_size": 100, "device": "cpu"}))
    for key, value in group.state_dict().items():  # stopped before the update
        torch.testing.assert_close(value, before[key])


def _step_state(step: int) -> dict:
    return {"epoch": 0, "step_in_epoch": step, "global_step": step, "w": torch.full((3,), step)}


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_lost_manifest_is_rebuilt_from_the_checkpoints_that_load_and_none_is_pruned(
    tmp_path: Path, damage: str,
) -> None:
    folder = CheckpointDir(tmp_path)
    for step in (10, 20):
        folder.save(_step_state(step), {"epoch": 0, "step_in_epoch": step, "global_step": step},
                    best=False, keep=2)
    (tmp_path / "step-000000099.pt").write_bytes(b"not a checkpoint")  # not ours to prune
    manifest = tmp_path / MANIFEST_FILE
    if damage == "missing":
        manifest.unlink()
    else:
        manifest.write_text(manifest.read_text()[:20])
    again = CheckpointDir(tmp_path)
    restored = again.load_newest_intact()
    assert restored is not None and restored.path.name == "step-000000020.pt"
    assert torch.equal(restored.state["w"], torch.full((3,), 20))
    assert len(restored.notes) == 1 and "rebuilt from the 2 checkpoint file(s) that load" in \
        restored.notes[0] and "not loading: step-000000099.pt" in restored.notes[0]
    again.save(_step_state(30), {"epoch": 0, "step_in_epoch": 30, "global_step": 30},
               best=False, keep=2)
    kept = sorted(p.name for p in tmp_path.glob("step-*.pt"))
    assert kept == ["step-000000020.pt", "step-000000030.pt", "step-000000099.pt"]
    listed = [e["file"] for e in json.loads(manifest.read_text())["checkpoints"]]
    assert listed == ["step-000000020.pt", "step-000000030.pt"]
