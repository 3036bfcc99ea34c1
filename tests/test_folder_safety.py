"""mutualctr deletes or writes into only what it can prove it wrote: a folder of the user's
files is refused as --out, --overwrite deletes only a run's own files, and a study's trial
folders stay inside the study."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutualctr.cli import main
from mutualctr.errors import ConfigError
from mutualctr.tuning.study import trial_folder
from training_support import write_store

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = ["--model", "lr", "--epochs", "1", "--set", "train.batch_size=100",
         "--set", "train.log_every_steps=1000"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("safety") / "data",
                       {"train": 300, "valid": 100, "test": 100})


def users_files(folder: Path) -> dict[Path, str]:
    (folder / "photos").mkdir(parents=True)
    files = {folder / "thesis.txt": "x", folder / "photos" / "a.jpg": "y"}
    for path, text in files.items():
        path.write_text(text)
    return files


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_the_users_files_is_refused_as_out_and_left_as_it_was(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], overwrite: bool,
) -> None:
    out = tmp_path / "u"
    files = users_files(out)
    argv = ["train", "--data", str(store), "--out", str(out), *TRAIN]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 2
    err = capsys.readouterr().err
    assert "is not a run folder and is not empty (photos, thesis.txt)" in err
    assert all(path.read_text() == text for path, text in files.items())
    assert sorted(p.name for p in out.iterdir()) == [".lock", "photos", "thesis.txt"]


def test_overwrite_deletes_only_the_runs_own_files(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(store), "--out", str(out), *TRAIN]) == 0
    (out / "notes.md").write_text("mine")  # the user's notes beside the run: kept on reuse
    argv = ["train", "--data", str(store), "--out", str(out), *TRAIN, "--seed", "7"]
    assert main([*argv, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite refused" in err and "files mutualctr did not write (notes.md)" in err
    assert (out / "notes.md").read_text() == "mine" and (out / "model.pt").is_file()
    (out / "notes.md").unlink()
    assert main([*argv, "--overwrite"]) == 0  # only its own files: the run starts over
    assert "seed: 7" in (out / "config.yaml").read_text()


def test_a_trial_folder_must_stay_inside_the_study(tmp_path: Path) -> None:
    assert trial_folder(tmp_path, "trials/0003") == (tmp_path / "trials" / "0003").resolve()
    for escape in ("../../X", "trials/../../X", str(tmp_path.parent / "elsewhere")):
        with pytest.raises(ConfigError, match="outside"):
            trial_folder(tmp_path, escape)


def test_tune_refuses_a_folder_of_the_users_files(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "study"
    files = users_files(out)
    (tmp_path / "tune.yaml").write_text(
        "method: train\nbase: {model: lr}\ntrials: 1\n"
        "space: {train.lr: {type: float, low: 0.001, high: 0.01}}\n")
    assert main(["tune", "--config", str(tmp_path / "tune.yaml"), "--data", str(store),
                 "--out", str(out), "--overwrite"]) == 2
    assert "holds files a study did not write (photos, thesis.txt)" in capsys.readouterr().err
    assert all(path.read_text() == text for path, text in files.items())
