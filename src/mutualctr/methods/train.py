"""One model trained alone on its own loss (BCE, plus its paper's own term for FINAL and DCNv3):
``mutualctr train``, and the single models of every experiment.

Re-running the same command on the same ``--out`` resumes from the last checkpoint, or, once the
run is finished, reuses it. Launched by ``torchrun --nproc_per_node=K -m mutualctr train ...``
it trains data-parallel (see :mod:`mutualctr.distributed.ddp`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mutualctr.config import to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method
from mutualctr.models.registry import build_model, model_config
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective


@dataclass
class IndependentConfig:
    """One registry ``model`` with its ``model_config`` overrides on the store ``data``.

    Attributes:
        model: registry model name, e.g. deepfm.
        model_config: the model's hyperparameters that differ from its defaults.
        data: encoded store folder, from `mutualctr data prepare`.
        train: the trainer's settings.
    """

    model: str = "deepfm"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)


def resolve(config: IndependentConfig) -> IndependentConfig:
    """Every hyperparameter of the model written out (its defaults included)."""
    return dataclasses.replace(
        config, model_config=to_dict(model_config(config.model, config.model_config)))


def build(config: IndependentConfig, store: EncodedStore) -> Built:
    model = build_model(config.model, store.feature_map, config.model_config)
    names = [config.model]
    return Built(ModelGroup([model], names), IndependentObjective(names), {}, [model], names)


METHOD = Method(
    "train", IndependentConfig, build, resolve,
    help="train one CTR model on an encoded store",
    description="Train a model; metrics, checkpoints and predictions go to --out.",
    flags=(Flag("--model", "model"),),
)
