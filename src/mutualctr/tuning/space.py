"""The tune file: which method's config, its base values, the metric, the space.

A space key is any config key of that command (``train.lr``, ``alpha``,
``model_config.embedding_dim`` ...); a trial's config is the base with each key set to the
trial's value, validated as the command validates its own config.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mutualctr.config import Validated, merge, nested, param
from mutualctr.errors import ConfigError
from mutualctr.methods import get_method


@dataclass
class Dimension(Validated):
    """One searched key: ``float``/``int`` between ``low`` and ``high`` (``log``: uniform in
    log space; ``step``: a grid), or ``categorical`` over ``choices``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty `choices` list")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.type} needs low < high, got low={self.low} high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log needs low > 0, got {self.low}")

    def example(self) -> Any:
        """A value of the range, to validate the key before any trial runs."""
        if self.type == "categorical":
            return self.choices[0]  # type: ignore[index]
        return int(self.low) if self.type == "int" else self.low  # type: ignore[arg-type]

    def suggest(self, trial: Any, name: str) -> Any:
        """The value Optuna's ``trial`` samples for ``name``."""
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Metric:
    """``"valid auc"`` / ``"valid logloss"``, optionally naming a prediction (``"valid auc
    ensemble"``); without one, the run's monitored prediction (the members' mean when each
    member is selected on its own)."""

    name: Literal["auc", "logloss"]
    prediction: str | None = None

    @classmethod
    def parse(cls, text: str) -> Metric:
        words = text.split()
        if len(words) not in (2, 3) or words[0] != "valid" or words[1] not in ("auc", "logloss"):
            raise ValueError(f"metric must be `valid auc` or `valid logloss`, optionally followed "
                             f"by a prediction name, got {text!r}")
        return cls(words[1], words[2] if len(words) == 3 else None)  # type: ignore[arg-type]

    @property
    def direction(self) -> str:
        return "maximize" if self.name == "auc" else "minimize"

    def value(self, valid: Mapping[str, Mapping[str, float]], monitored: Iterable[str]) -> float:
        """The metric from a run's validation metrics; ``monitored``: the run's monitored
        names (the keys of a ``metrics.jsonl`` record's ``best_epoch``)."""
        names = [self.prediction] if self.prediction else list(monitored)
        missing = [n for n in names if n not in valid]
        if missing or not names:
            raise ConfigError(f"metric: no prediction {missing or names}; the run has "
                              f"{sorted(valid)}")
        return math.fsum(valid[n][self.name] for n in names) / len(names)


@dataclass
class TuneConfig(Validated):
    """A study: ``trials`` runs of ``method``'s config ``base`` with ``space`` sampled by TPE
    (seeded with ``seed``), ranked by ``metric``; ``study`` names it in the storage."""

    method: str = "train"  # a registered method (mutualctr.methods.method_names)
    base: dict[str, Any] = field(default_factory=dict)
    metric: str = "valid auc"
    trials: int = param(20, ge=1)
    seed: int = param(2024, ge=0)
    study: str = "tune"
    space: dict[str, Dimension] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_method(self.method)
        Metric.parse(self.metric)
        if not self.space:
            raise ValueError("space is empty: name at least one config key to search")

    @property
    def objective_metric(self) -> Metric:
        return Metric.parse(self.metric)


def trial_config(config: TuneConfig, values: Mapping[str, Any]) -> Any:
    """``config.base`` with each dotted key of ``values`` set, as the method's resolved config
    (what ``--print-config`` prints)."""
    data: dict[str, Any] = dict(config.base)
    for key, value in values.items():
        data = merge(data, nested(key, value))
    method = get_method(config.method)
    return method.resolve(method.config(data))


def check(config: TuneConfig) -> None:
    """The base config and every space key, validated before any trial runs; an error names
    the space key."""
    try:
        trial_config(config, {})
    except ConfigError as err:
        raise ConfigError(f"base: {err}") from err
    for key, dimension in config.space.items():
        try:
            trial_config(config, {key: dimension.example()})
        except ConfigError as err:
            raise ConfigError(f"space key {key!r}: {err}") from err
