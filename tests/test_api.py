"""The Python API: `mutualctr.__all__`, the README's example run as written (on fewer rows), and
configs given in Python validated as on the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mutualctr
from mutualctr.cli import main
from mutualctr.errors import ConfigError
from mutualctr.methods.mutual import FINETUNE_LR, MutualConfig
from mutualctr.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The README's Python example (its one ``python`` code block)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_all_lists_the_api_and_import_does_not_load_torch() -> None:
    assert {"prepare", "train", "load", "synthesize", "method_names", "ConfigError"} <= set(
        mutualctr.__all__)
    assert all(getattr(mutualctr, name) is not None for name in mutualctr.__all__)
    code = "import sys, mutualctr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(AttributeError):
        mutualctr.no_such_name  # noqa: B018


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_example()
    assert "rows=20_000" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("rows=20_000", "rows=4_000"), "README.md", "exec"), scope)
    printed = capsys.readouterr().out.splitlines()[-1]
    alone, mutual, student = scope["alone"], scope["mutual"], scope["student"]
    assert [run.method for run in (*alone, mutual, student)] == [
        "train", "train", "mutual", "distill"]
    assert mutual.config.train.lr == FINETUNE_LR  # the preset for members started from runs
    assert set(mutual.metrics["test"]) >= {"deepfm", "dcn"}
    assert set(student.metrics["test"]) == {"student", "ensemble"}
    # the data frame's scores are the `predict` command's for the same rows
    probabilities = scope["probabilities"]
    assert probabilities.shape == (1000,) and probabilities.dtype == np.float32
    lines = Path("clicks.txt").read_text().splitlines(keepends=True)[:1000]
    Path("head.txt").write_text("".join(lines))
    assert main(["predict", "runs/deepfm", "--input", "head.txt", "--out", "head.csv"]) == 0
    column = np.genfromtxt("head.csv", delimiter=",", names=True, dtype=None,
                           encoding="utf-8")["prediction"]
    np.testing.assert_allclose(probabilities, column, rtol=1e-6)
    assert Path("runs/deepfm/export/model.onnx").is_file()
    # the printed test AUC is metrics.json's
    stored = json.loads(Path("runs/deepfm/metrics.json").read_text())["test"]["deepfm"]["auc"]
    assert float(printed) == pytest.approx(stored, abs=1e-6)
    # a finished run is reused, not trained again
    again = mutualctr.train("train", data="data/clicks", out="runs/deepfm", model="deepfm",
                            train={"epochs": 2, "batch_size": 1000})
    assert again.reused and again.metrics == alone[0].metrics


def test_python_configs_are_validated_as_the_command_line_validates_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match=r"^lr: must be > 0.0, got -1.0$"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match=r"train.lr: must be > 0.0, got -1.0"):
        mutualctr.train("train", data=tmp_path, out=tmp_path / "run", train={"lr": -1})
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                 "--set", "train.lr=-1"]) == 2
    assert "train.lr: must be > 0.0, got -1.0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="embedding_dim: must be >= 1, got 0"):
        mutualctr.train("train", data=tmp_path, out=tmp_path / "run",
                        model_config={"embedding_dim": 0})
    with pytest.raises(ConfigError, match="unknown config key 'wieght'; did you mean 'weight'"):
        mutualctr.train("mutual", data=tmp_path, out=tmp_path / "run", wieght=2)
    with pytest.raises(ConfigError, match="unknown method 'mutal'; did you mean 'mutual'"):
        mutualctr.train("mutal", data=tmp_path, out=tmp_path / "run")
    # a dataclass config is a base like a file; keyword settings go over it
    base = MutualConfig(members=[{"model": "dnn"}, {"model": "lr"}], weight=0.5)
    config = mutualctr.get_method("mutual").config(base, weight=2.0)
    assert config.weight == 2.0 and [m.model for m in config.members] == ["dnn", "lr"]
