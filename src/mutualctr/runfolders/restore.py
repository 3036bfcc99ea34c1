"""Describe a trained group in ``model.json`` and rebuild it from a run folder, without pickle.

``model.json`` holds the members (name, registry model, resolved hyperparameters), the
objective (a class in :mod:`mutualctr.training.objectives` and its constructor arguments after
the member names) and the feature map; ``model.pt`` holds the weights (weights-only). Commands
that train groups write their spec with :func:`model_spec`; ``evaluate``, ``predict`` and
``export`` rebuild any such run with :func:`load_trained`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutualctr.config import to_dict
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel
from mutualctr.models.registry import build_model
from mutualctr.runfolders.folder import read_config, read_model_spec, read_weights
from mutualctr.training import objectives
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.base import Objective


def model_spec(
    names: list[str], models: list[CTRModel], objective: Objective,
    objective_params: dict[str, Any], feature_map: FeatureMap,
) -> dict[str, Any]:
    """The ``model.json`` content for ``models`` (built by the registry) under ``objective``.

    ``objective_params`` are the keyword arguments that rebuild the objective as
    ``type(objective)(names, **objective_params)``.
    """
    cls = type(objective)
    module = cls.__module__.rpartition(".")
    if module[0] != objectives.__name__:
        raise ValueError(f"objective {cls.__name__} must live in {objectives.__name__}")
    return {
        "members": [
            {"name": n, "model": m.name, "config": to_dict(m.config)}
            for n, m in zip(names, models, strict=True)
        ],
        "objective": {"module": module[2], "class": cls.__name__, "params": objective_params},
        "feature_map": feature_map.to_dict(),
    }


@dataclass
class TrainedRun:
    root: Path
    group: ModelGroup
    objective: Objective
    feature_map: FeatureMap
    spec: dict[str, Any]
    config: dict[str, Any]

    def require_feature_map(self, feature_map: FeatureMap) -> None:
        """Refuse data encoded differently from the data the run was trained on."""
        if feature_map != self.feature_map:
            raise ConfigError(
                f"the data's features differ from those run {self.root} was trained on "
                f"({len(feature_map.features)} vs {len(self.feature_map.features)} features, "
                "or other vocabularies); use the run's own store"
            )


def _objective_class(module: str, name: str) -> type[Objective]:
    if not module.isidentifier():
        raise ConfigError(f"model.json: invalid objective module {module!r}")
    mod = importlib.import_module(f"{objectives.__name__}.{module}")
    cls = getattr(mod, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise ConfigError(f"model.json: {module}.{name} is not an objective")
    return cls


def load_trained(root: str | Path) -> TrainedRun:
    """Rebuild the group and objective of a finished run with its final weights, in eval mode."""
    root = Path(root)
    spec = read_model_spec(root)
    weights = read_weights(root)
    feature_map = FeatureMap.from_dict(spec["feature_map"])
    names = [m["name"] for m in spec["members"]]
    models = [build_model(m["model"], feature_map, m["config"]) for m in spec["members"]]
    group = ModelGroup(models, names)
    for i, name in enumerate(names):
        group.load_member_state_dict(i, weights["members"][name])
    obj = spec["objective"]
    objective = _objective_class(obj["module"], obj["class"])(names, **obj["params"])
    objective.load_state_dict(weights["objective"])
    for module in (group, objective):
        module.eval()
    return TrainedRun(root, group, objective, feature_map, spec, read_config(root))

