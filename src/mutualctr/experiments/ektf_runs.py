"""One EKTF-family run: students, a group and an objective, trained into a run folder.

A :class:`Method` names the students and the objective: ``independent`` (plain training; a
single model keeps its own embedding), an EKTF variant (``ektf``, ``only_kd``, ``only_dml``,
``no_examination``, ``mean``) or a KD baseline (``online_kd``, ``kdcl``, ``eckd``); every method
with two or more students shares one embedding. :func:`train_method` trains it with the
project's trainer and returns its ``metrics.json`` content; run folders are reused, so an
interrupted experiment resumes where it stopped.

``dagfm`` is KD-DAGFM (Tian et al., WSDM 2023), three runs in sub-folders of the run folder:
``teacher/`` (the method's teacher, DCNv2 by default, trained alone on BCE), ``distill/`` (one
student, DAGFM, over the teacher's embedding with the teacher and the embedding frozen, under
:class:`~mutualctr.training.objectives.kd_baselines.DAGFMDistillation`) and ``finetune/`` (the
distilled student alone, embedding included, on BCE). Each phase is reused once finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml

from mutualctr.config import TrainConfig, to_dict
from mutualctr.data.batch import Batch
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.models.registry import build_model
from mutualctr.training.group import ModelGroup
from mutualctr.training.objective import Objective
from mutualctr.training.objectives.ektf import TEACHER, VARIANTS, EKTFObjective
from mutualctr.training.objectives.independent import ENSEMBLE, IndependentObjective
from mutualctr.training.objectives.kd_baselines import ECKD, KDCL, DAGFMDistillation, OnlineKD
from mutualctr.training.restore import load_trained, model_spec
from mutualctr.training.runfolder import CONFIG_FILE, METRICS_FILE, MODEL_SPEC_FILE, RunFolder
from mutualctr.training.shared_embedding import SharedEmbeddingGroup, StudentSpec, student_names
from mutualctr.training.trainer import fit, seed_everything

KD_BASELINES = ("online_kd", "kdcl", "eckd")
DISTILLATION = "dagfm"  # KD-DAGFM: teacher -> distillation -> finetuning
ENSEMBLE_NAMES = (TEACHER, ENSEMBLE)
OBJECTIVES = ("independent", *VARIANTS, *KD_BASELINES, DISTILLATION)
DEFAULT_TEACHER = StudentSpec("dcnv2")  # registry defaults
TEACHER_SUFFIX = "_teacher"
PHASES = ("teacher", "distill", "finetune")
DISTILLATION_LOSS = {"alpha": 1.0, "beta": 1.0}


@dataclass(frozen=True)
class Method:
    """Students plus the objective that trains them (see the module docstring)."""

    students: tuple[StudentSpec, ...]
    objective: str = "ektf"
    detach_weights: bool = False  # EKTF variants only
    teacher: StudentSpec | None = None  # dagfm only; None there means DEFAULT_TEACHER

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; expected one of "
                              f"{list(OBJECTIVES)}")
        if not self.students:
            raise ConfigError("a method needs at least one student")
        if self.objective == DISTILLATION:
            if len(self.students) != 1:
                raise ConfigError(f"{DISTILLATION!r} distils its teacher into exactly one "
                                  f"student (e.g. --students dagfm), got {len(self.students)}")
            if self.teacher is None:
                object.__setattr__(self, "teacher", DEFAULT_TEACHER)
        elif self.teacher is not None:
            raise ConfigError(f"only the {DISTILLATION!r} objective has a teacher")


def distillation_teacher_name(spec: StudentSpec) -> str:
    """The teacher's prediction name in a ``dagfm`` run, e.g. ``dcnv2_teacher``."""
    return f"{spec.model}{TEACHER_SUFFIX}"


class DistillationGroup(SharedEmbeddingGroup):
    """KD-DAGFM's distillation phase: ``[teacher, student]`` over the teacher's embedding.

    The teacher and the embedding are frozen: not trainable (so not optimised, no L2), run
    without autograd (the authors detach the embedding) and kept in eval mode while the
    student trains.
    """

    def __init__(self, teacher: CTRModel, student: CTRModel, names: Sequence[str]) -> None:
        super().__init__([teacher, student], names)
        for frozen in (self.embedding, teacher):
            frozen.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> DistillationGroup:
        super().train(mode)
        self.embedding.eval()
        self.models[0].eval()
        return self

    def forward(self, batch: Batch) -> list[ModelOutput]:
        with torch.no_grad():
            emb = self.embedding(batch)
            teacher = self.models[0].forward_embedded(batch, emb)
        return [teacher, self.models[1].forward_embedded(batch, emb)]


def _build_model(spec: StudentSpec, store: EncodedStore, embedding_dim: int) -> CTRModel:
    return build_model(spec.model, store.feature_map,
                       {**spec.overrides, "embedding_dim": embedding_dim})


def build_group(method: Method, store: EncodedStore, embedding_dim: int) -> ModelGroup:
    """A single model keeps its own embedding; two or more students share one."""
    names = student_names(method.students)
    if len(method.students) == 1:
        return ModelGroup([_build_model(method.students[0], store, embedding_dim)], names)
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
    ...}`` (one prediction per student, plus ``teacher`` or ``ensemble`` for groups; for
    ``dagfm`` the finetuned student's and the teacher's, see :func:`train_kd_dagfm`).
    """
    store = EncodedStore.open(data)
    if method.objective == DISTILLATION:
        return train_kd_dagfm(method, store, Path(out), train, embedding_dim, overwrite, log)
    config = {
        "data": str(Path(data).resolve()),
        "method": {"students": [_spec_dict(s) for s in method.students],
                   "objective": method.objective, "detach_weights": method.detach_weights},
        "embedding_dim": embedding_dim,
        "train": to_dict(train),
    }

    def build() -> tuple[ModelGroup, Objective, dict[str, Any]]:
        group = build_group(method, store, embedding_dim)
        return group, *build_objective(method, group)

    phase = _Phase(store, train, overwrite, log)
    return phase.run(Path(out), config, student_names(method.students), build)


def _spec_dict(spec: StudentSpec) -> dict[str, Any]:
    return {"model": spec.model, "overrides": dict(spec.overrides)}


@dataclass
class _Phase:
    """Trains one group into one run folder, or reads back a finished run of the same config."""

    store: EncodedStore
    train: TrainConfig
    overwrite: bool
    log: TextIO | None

    def run(self, out: Path, config: dict[str, Any], names: Sequence[str],
            build: Callable[[], tuple[ModelGroup, Objective, dict[str, Any]]]
            ) -> dict[str, Any]:
        """``build()`` (called after seeding) gives the group, the objective and the
        objective's constructor arguments; returns the metrics keyed by prediction."""
        if not self.overwrite and _finished_with(out, config):
            return _by_prediction(json.loads((out / METRICS_FILE).read_text()), names)
        run = RunFolder.open(out, config, overwrite=self.overwrite)
        try:
            seed_everything(self.train.seed)
            group, objective, params = build()
            run.write_model_spec(model_spec(group.names, list(group.models), objective, params,
                                            self.store.feature_map))
            store = self.store
            test = store.split("test") if "test" in store.split_names else None
            result = fit(group, objective, store.split("train"), store.split("valid"),
                         self.train, run, test, log=self.log)
        finally:
            run.close()
        return _by_prediction(result.metrics, group.names)


def train_kd_dagfm(
    method: Method, store: EncodedStore, out: Path, train: TrainConfig, embedding_dim: int = 16,
    overwrite: bool = False, log: TextIO | None = None,
) -> dict[str, Any]:
    """KD-DAGFM's three phases into ``out/teacher``, ``out/distill`` and ``out/finetune``.

    Returns ``{"valid": {student: ..., teacher: ...}, "test": ...}``: the finetuned student
    under its name (``dagfm_1``) and the teacher under :func:`distillation_teacher_name`.
    """
    teacher_spec, student_spec = method.teacher or DEFAULT_TEACHER, method.students[0]
    teacher = distillation_teacher_name(teacher_spec)
    (student,) = student_names(method.students)
    common = {"data": str(store.root.resolve()), "embedding_dim": embedding_dim,
              "train": to_dict(train)}
    pair = {"teacher": _spec_dict(teacher_spec), "student": _spec_dict(student_spec),
            "loss": dict(DISTILLATION_LOSS)}
    phase = _Phase(store, train, overwrite, log)
    folders = {name: out / name for name in PHASES}
    teacher_metrics = phase.run(
        folders["teacher"], {"phase": "teacher", "model": pair["teacher"], **common}, [teacher],
        lambda: _teacher_phase(teacher_spec, teacher, store, embedding_dim))
    phase.run(folders["distill"], {"phase": "distill", **pair, **common}, [teacher, student],
              lambda: _distill_phase(folders["teacher"], student_spec, [teacher, student],
                                     store, embedding_dim))
    student_metrics = phase.run(folders["finetune"], {"phase": "finetune", **pair, **common},
                                [student], lambda: _finetune_phase(folders["distill"], student))
    return {split: {**student_metrics[split], **teacher_metrics[split]}
            for split in student_metrics}


def _teacher_phase(spec: StudentSpec, name: str, store: EncodedStore, embedding_dim: int
                   ) -> tuple[ModelGroup, Objective, dict[str, Any]]:
    """(a) The teacher alone on BCE."""
    group = ModelGroup([_build_model(spec, store, embedding_dim)], [name])
    return group, IndependentObjective([name]), {}


def _distill_phase(teacher_run: Path, spec: StudentSpec, names: list[str], store: EncodedStore,
                   embedding_dim: int) -> tuple[ModelGroup, Objective, dict[str, Any]]:
    """(b) A fresh student on the trained teacher's frozen embedding, taught by the teacher."""
    teacher = load_trained(teacher_run).group.models[0]
    group = DistillationGroup(teacher, _build_model(spec, store, embedding_dim), names)
    return group, DAGFMDistillation(names, **DISTILLATION_LOSS), dict(DISTILLATION_LOSS)


def _finetune_phase(distill_run: Path, name: str
                    ) -> tuple[ModelGroup, Objective, dict[str, Any]]:
    """(c) The distilled student alone, embedding trainable again, on BCE."""
    distilled = load_trained(distill_run).group
    student = distilled.models[distilled.names.index(name)]
    return ModelGroup([student], [name]), IndependentObjective([name]), {}


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
    names = [n for n in metrics["valid"]
             if n not in ENSEMBLE_NAMES and not n.endswith(TEACHER_SUFFIX)]
    return sorted(names, key=lambda n: -metrics["valid"][n]["auc"])


def export_best_student(run: str | Path, out: str | Path) -> str:
    """Write the run's best student (validation AUC) as a single-model run folder ``out``
    (``model.json`` + ``model.pt``, loadable by :func:`~mutualctr.training.restore.
    load_trained`); the student keeps a copy of the shared embedding. Returns its name."""
    run = Path(run)
    if not (run / MODEL_SPEC_FILE).exists() and (run / PHASES[-1]).is_dir():
        run = run / PHASES[-1]  # a dagfm run: its student is the finetuned one
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
