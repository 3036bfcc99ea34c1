"""One model trained alone on its own loss (BCE, plus its paper's own term for FINAL and DCNv3):
what ``mutualctr train`` runs, and the single models of every experiment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mutualctr.config import to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.methods.base import Built, Method
from mutualctr.models.registry import build_model, model_config
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective


@dataclass
class IndependentConfig:
    """One registry ``model`` with its ``model_config`` overrides on the store ``data``."""

    model: str = "deepfm"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: str = ""  # encoded store folder
    train: TrainConfig = field(default_factory=TrainConfig)


def resolve(config: IndependentConfig) -> IndependentConfig:
    """Every hyperparameter of the model written out (its defaults included)."""
    return dataclasses.replace(
        config, model_config=to_dict(model_config(config.model, config.model_config)))


def build(config: IndependentConfig, store: EncodedStore) -> Built:
    model = build_model(config.model, store.feature_map, config.model_config)
    names = [config.model]
    return Built(ModelGroup([model], names), IndependentObjective(names), {}, [model], names)


METHOD = Method("independent", IndependentConfig, build, resolve)
