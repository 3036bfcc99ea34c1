"""Config validation: unknown keys, types, ranges, overrides and safe YAML loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from mutualctr.config import (
    from_dict,
    load_config,
    load_yaml,
    param,
    parse_overrides,
    to_dict,
)
from mutualctr.errors import ConfigError
from mutualctr.methods.train import IndependentConfig
from mutualctr.training.config import TrainConfig


@dataclass
class Inner:
    units: tuple[int, ...] = (400, 200)
    act: Literal["relu", "tanh"] = "relu"


@dataclass
class Outer:
    rate: float = param(0.5, ge=0.0, lt=1.0)
    name: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_nested_values() -> None:
    cfg = from_dict(Outer, {"rate": "1e-3", "inner": {"units": [8, 4], "act": "tanh"}})
    assert cfg == Outer(rate=0.001, inner=Inner(units=(8, 4), act="tanh"))
    assert to_dict(cfg) == {"rate": 0.001, "name": None, "inner": {"units": [8, 4], "act": "tanh"}}
    assert from_dict(Outer, None) == Outer()


def test_unknown_key_names_key_and_closest_valid_one() -> None:
    with pytest.raises(ConfigError, match=r"'inner\.unit'.*did you mean 'units'"):
        from_dict(Outer, {"inner": {"unit": [1]}})
    with pytest.raises(ConfigError, match=r"unknown config key 'zzz'; valid keys"):
        from_dict(Outer, {"zzz": 1})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": 1.0}, r"rate: must be < 1\.0"),
        ({"rate": -0.1}, r"rate: must be >= 0\.0"),
        ({"rate": "fast"}, r"rate: expected a number"),
        ({"rate": True}, r"rate: expected a number"),
        ({"inner": {"units": [1, "x"]}}, r"inner\.units\[1\]: expected an integer"),
        ({"inner": {"units": 5}}, r"inner\.units: expected a list"),
        ({"inner": {"act": "gelu"}}, r"inner\.act: must be one of \['relu', 'tanh'\]"),
        ({"inner": 3}, r"inner: expected a mapping"),
        ({"name": 3}, r"name: expected a string"),
    ],
)
def test_wrong_types_and_ranges_are_clear_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_train_config_ranges_and_device() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs: must be >= 1"):
        from_dict(IndependentConfig, {"train": {"epochs": 0}})
    with pytest.raises(ConfigError, match="device must be"):
        from_dict(TrainConfig, {"device": "tpu"})
    with pytest.raises(ConfigError, match=r"schedule\.name: must be one of"):
        from_dict(TrainConfig, {"schedule": {"name": "cosine"}})


def test_overrides_parse_yaml_scalars_and_beat_the_file(tmp_path: Path) -> None:
    assert parse_overrides(["train.lr=7e-4", "model_config.mlp=[4, 2]", "train.amp=true"]) == {
        "train": {"lr": "7e-4", "amp": True},
        "model_config": {"mlp": [4, 2]},
    }
    file = tmp_path / "c.yaml"
    file.write_text("model: dcn\ntrain:\n  lr: 1.0e-2\n  epochs: 3\n")
    cfg = load_config(IndependentConfig, file, ["train.lr=7e-4"], extra={"train": {"epochs": 2}})
    assert (cfg.model, cfg.train.lr, cfg.train.epochs) == ("dcn", 7e-4, 2)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["train.lr"])


def test_yaml_is_safe_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    file = tmp_path / "evil.yaml"
    file.write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(file)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_yaml(tmp_path / "missing.yaml")
