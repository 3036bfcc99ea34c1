"""Configs check their types and ranges when they are built, in Python as from YAML or the
command line: one validator (mutualctr.config.Validated over from_dict's checks)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from mutualctr.cli import main
from mutualctr.config import Validated, from_dict, param
from mutualctr.errors import ConfigError
from mutualctr.methods.cetnet import CETNetConfig
from mutualctr.methods.ektf import EKTFConfig
from mutualctr.models.deepfm import DeepFMConfig
from mutualctr.models.lr import LRConfig
from mutualctr.models.registry import get_model_class, model_config, model_names
from mutualctr.training.config import ScheduleConfig, TrainConfig
from mutualctr.tuning.space import Dimension


def _message(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        call()
    return str(caught.value)


def test_train_config_in_python_fails_as_from_dict_and_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    built = _message(lambda: TrainConfig(lr=-1))
    assert built == "lr: must be > 0.0, got -1.0"
    assert _message(lambda: from_dict(TrainConfig, {"lr": -1})) == built
    capsys.readouterr()
    argv = ["train", "--model", "dnn", "--data", str(tmp_path / "none"),
            "--out", str(tmp_path / "run"), "--set", "train.lr=-1"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"mutualctr: error: train.{built}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(epochs=0),
    lambda: TrainConfig(batch_size=1.5),
    lambda: TrainConfig(optimizer="sgd"),
    lambda: ScheduleConfig(factor=1.0),
    lambda: TrainConfig(schedule={"factor": 1.0}),
])
def test_train_config_ranges_and_types_hold_in_python(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        make()


def test_model_config_ranges_hold_in_python_and_through_the_registry() -> None:
    assert _message(lambda: DeepFMConfig(embedding_dim=0)) == "embedding_dim: must be >= 1, got 0"
    assert (_message(lambda: model_config("deepfm", {"embedding_dim": 0}))
            == "model 'deepfm': embedding_dim: must be >= 1, got 0")
    assert _message(lambda: DeepFMConfig(dropout=1.5)) == "dropout: must be < 1.0, got 1.5"
    with pytest.raises(ConfigError, match=r"model 'deepfm': dropout: must be < 1\.0"):
        model_config("deepfm", {"dropout": 1.5})
    # a range declared on a list holds for each item
    with pytest.raises(ConfigError, match=r"hidden_units\[1\]: must be >= 1, got 0"):
        DeepFMConfig(hidden_units=(8, 0))
    # a subclass giving a field a new default keeps its base's range
    with pytest.raises(ConfigError, match="embedding_dim: must be >= 1"):
        LRConfig(embedding_dim=0)
    with pytest.raises(ConfigError, match="numeric_init: must be one of"):
        DeepFMConfig(numeric_init="uniform")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"model 'me_dnn': num_embeddings: must be >= 1"):
        model_config("me_dnn", {"num_embeddings": 0})


@pytest.mark.parametrize("name", model_names())
def test_every_model_default_is_in_range_and_equals_the_yaml_one(name: str) -> None:
    config_class = get_model_class(name).config_class
    assert issubclass(config_class, Validated)
    assert config_class() == model_config(name, {})


def test_a_python_built_config_equals_the_yaml_built_one() -> None:
    text = """
        lr: 1e-3
        epochs: 2
        grad_clip: 5
        schedule: {name: exponential, decay_epochs: 2}
    """
    from_yaml = from_dict(TrainConfig, yaml.safe_load(text))
    in_python = TrainConfig(lr="1e-3", epochs=2, grad_clip=5,  # type: ignore[arg-type]
                            schedule={"name": "exponential", "decay_epochs": 2})  # type: ignore
    assert in_python == from_yaml
    assert isinstance(in_python.lr, float) and isinstance(in_python.grad_clip, float)
    assert isinstance(in_python.schedule, ScheduleConfig)
    model = DeepFMConfig(hidden_units=[400, 400], dropout=0)  # type: ignore[arg-type]
    assert model.hidden_units == (400, 400) and isinstance(model.dropout, float)
    assert model == model_config("deepfm", yaml.safe_load("{hidden_units: [400, 400], dropout: 0}"))
    # a copy with changes is checked again
    with pytest.raises(ConfigError, match=r"lr: must be > 0\.0"):
        dataclasses.replace(in_python, lr=0.0)


def test_a_subclass_own_post_init_still_runs_after_the_checks() -> None:
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig(device="tpu")
    with pytest.raises(ValueError, match="need at least one student"):
        EKTFConfig(students=[])
    with pytest.raises(ConfigError, match=r"alpha: must be >= 0\.0"):
        CETNetConfig(alpha=-1.0)
    with pytest.raises(ValueError, match="needs low < high"):
        Dimension("float", 1.0, 0.5)
    # from_dict still reports an own check's error under its path
    with pytest.raises(ConfigError, match="the top level: device must be"):
        from_dict(TrainConfig, {"device": "tpu"})


@dataclass(frozen=True)
class Frozen(Validated):
    rate: float = param(0.5, ge=0.0, lt=1.0)
    sizes: tuple[int, ...] = (1, 2)


@dataclass
class Base(Validated):
    count: int = param(1, ge=1)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.calls.append("base")


@dataclass
class Child(Base):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls.append("child")


@dataclass
class Grandchild(Child):
    pass


def test_frozen_configs_are_converted_and_own_hooks_compose() -> None:
    frozen = Frozen(rate=0, sizes=[3])  # type: ignore[arg-type]
    assert frozen == Frozen(rate=0.0, sizes=(3,)) and isinstance(frozen.rate, float)
    with pytest.raises(ConfigError, match=re.escape("rate: must be < 1.0, got 1.0")):
        Frozen(rate=1)
    assert Child().calls == ["base", "child"] and Grandchild().calls == ["base", "child"]
    with pytest.raises(ConfigError, match="count: must be >= 1"):
        Grandchild(count=0)
