"""One EKTF-family run: students, a group and an objective, trained into a run folder.

A :class:`Method` names the students and the objective: ``independent`` (plain training; a
single model keeps its own embedding), an EKTF variant (``ektf``, ``only_kd``, ``only_dml``,
``no_examination``, ``mean``) or a KD baseline (``online_kd``, ``kdcl``, ``eckd``); every method
with two or more students shares one embedding. :func:`train_method` trains it with the
project's trainer and returns its ``metrics.json`` content; run folders are reused, so an
interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from mutualctr.config import TrainConfig, to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.models.registry import build_model
from mutualctr.training.group import ModelGroup
from mutualctr.training.objective import Objective
from mutualctr.training.objectives.ektf import TEACHER, VARIANTS, EKTFObjective
from mutualctr.training.objectives.independent import ENSEMBLE, IndependentObjective
from mutualctr.training.objectives.kd_baselines import ECKD, KDCL, OnlineKD
from mutualctr.training.restore import load_trained, model_spec
from mutualctr.training.runfolder import CONFIG_FILE, METRICS_FILE, RunFolder
from mutualctr.training.shared_embedding import SharedEmbeddingGroup, StudentSpec, student_names
from mutualctr.training.trainer import fit, seed_everything

KD_BASELINES = ("online_kd", "kdcl", "eckd")
ENSEMBLE_NAMES = (TEACHER, ENSEMBLE)
OBJECTIVES = ("independent", *VARIANTS, *KD_BASELINES)


@dataclass(frozen=True)
class Method:
    """Students plus the objective that trains them (see the module docstring)."""

    students: tuple[StudentSpec, ...]
    objective: str = "ektf"
    detach_weights: bool = False  # EKTF variants only

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; expected one of "
                              f"{list(OBJECTIVES)}")
        if not self.students:
            raise ConfigError("a method needs at least one student")


def build_group(method: Method, store: EncodedStore, embedding_dim: int) -> ModelGroup:
    """A single model keeps its own embedding; two or more students share one."""
    names = student_names(method.students)
    if len(method.students) == 1:
        spec = method.students[0]
        model = build_model(spec.model, store.feature_map,
                            {**spec.overrides, "embedding_dim": embedding_dim})
        return ModelGroup([model], names)
    return SharedEmbeddingGroup.build(store.feature_map, method.students, embedding_dim)


def build_objective(method: Method, group: ModelGroup) -> tuple[Objective, dict[str, Any]]:
    """The objective and the keyword arguments that rebuild it (for ``model.json``)."""
    names = group.names
    params: dict[str, Any]
    if method.objective == "independent":
        return IndependentObjective(names), {}
    if method.objective in VARIANTS:
        params = {"variant": method.objective, "detach_weights": method.detach_weights}
        return EKTFObjective(names, **params), params
    params = {"temperature": 1.0, "alpha": 1.0}
    if method.objective == "eckd":
        params["representation_dims"] = [m.representation_dim for m in group.models]
        return ECKD(names, **params), params
    cls = OnlineKD if method.objective == "online_kd" else KDCL
    return cls(names, **params), params


def train_method(
    method: Method, data: str | Path, out: str | Path, train: TrainConfig,
    embedding_dim: int = 16, overwrite: bool = False, log: TextIO | None = None,
) -> dict[str, Any]:
    """Train ``method`` on the encoded store ``data`` into the run folder ``out``.

    Returns ``metrics.json``'s content: ``{"valid": {prediction: {"auc", "logloss"}}, "test":
    ...}`` (one prediction per student, plus ``teacher`` or ``ensemble`` for groups).
    """
    store = EncodedStore.open(data)
    config = {
        "data": str(Path(data).resolve()),
        "method": {"students": [{"model": s.model, "overrides": dict(s.overrides)}
                                for s in method.students],
                   "objective": method.objective, "detach_weights": method.detach_weights},
        "embedding_dim": embedding_dim,
        "train": to_dict(train),
    }
    if not overwrite and _finished_with(Path(out), config):
        metrics = json.loads((Path(out) / METRICS_FILE).read_text())
        return _by_prediction(metrics, student_names(method.students))
    run = RunFolder.open(out, config, overwrite=overwrite)
    try:
        seed_everything(train.seed)
        group = build_group(method, store, embedding_dim)
        objective, params = build_objective(method, group)
        run.write_model_spec(
            model_spec(group.names, list(group.models), objective, params, store.feature_map)
        )
        test = store.split("test") if "test" in store.split_names else None
        result = fit(group, objective, store.split("train"), store.split("valid"), train, run,
                     test, log=log)
    finally:
        run.close()
    return _by_prediction(result.metrics, group.names)


def _finished_with(out: Path, config: dict[str, Any]) -> bool:
    """Whether ``out`` holds a finished run of exactly ``config`` (then it is not retrained)."""
    config_path, metrics_path = out / CONFIG_FILE, out / METRICS_FILE
    if not (config_path.is_file() and metrics_path.is_file()):
        return False
    return yaml.safe_load(config_path.read_text()) == config


def _by_prediction(metrics: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``fit`` flattens single-prediction metrics; key them by the member's name again."""
    return {
        split: values if "auc" not in values else {names[0]: values}
        for split, values in metrics.items()
    }


def students_ranked(metrics: Mapping[str, Any]) -> list[str]:
    """A run's student predictions, best first by validation AUC."""
    names = [n for n in metrics["valid"] if n not in ENSEMBLE_NAMES]
    return sorted(names, key=lambda n: -metrics["valid"][n]["auc"])


def export_best_student(run: str | Path, out: str | Path) -> str:
    """Write the run's best student (validation AUC) as a single-model run folder ``out``
    (``model.json`` + ``model.pt``, loadable by :func:`~mutualctr.training.restore.
    load_trained`); the student keeps a copy of the shared embedding. Returns its name."""
    run = Path(run)
    metrics = json.loads((run / METRICS_FILE).read_text())
    trained = load_trained(run)
    name = students_ranked(_by_prediction(metrics, trained.group.names))[0]
    model = trained.group.models[trained.group.names.index(name)]
    with RunFolder.open(out, {"exported_from": str(run.resolve()), "member": name},
                        overwrite=True) as folder:
        folder.write_model_spec(model_spec([name], [model], IndependentObjective([name]), {},
                                           trained.feature_map))
        folder.write_weights({"members": {name: model.state_dict()}, "objective": {}})
    return name
