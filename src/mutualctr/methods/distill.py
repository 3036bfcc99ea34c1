"""Knowledge distillation of one student from the averaged predictions of trained runs (Hinton
et al. 2015): the plain baseline collaborative training is measured against.

    mutualctr distill --data DIR --teachers RUN1 RUN2 --student deepfm --out RUN

The teachers are finished run folders (``RUN`` or ``RUN:member``), loaded frozen and kept in
evaluation mode; the student trains on :class:`~mutualctr.training.objectives.distill.
EnsembleDistillation`. ``metrics.json`` reports the student under its name and the teachers'
averaging ensemble as ``ensemble``. The run folder holds the teachers too, so ``evaluate`` and
``predict`` show both; ``--export-student DIR`` writes the student alone, the model to serve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mutualctr.config import Validated, param
from mutualctr.data.batch import Batch
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method
from mutualctr.methods.ektf import export_best_student
from mutualctr.methods.members import MemberConfig, build_member, resolve_members
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.distill import EnsembleDistillation

STUDENT = "student"


@dataclass
class DistillConfig(Validated):
    """What ``mutualctr distill`` runs.

    Attributes:
        data: encoded store folder, from `mutualctr data prepare`.
        teachers: the trained runs whose averaged predictions teach, each `{init: RUN}` or
            `{init: RUN:member}`.
        student: the student, a registry model with its hyperparameters (or a run to start
            from); named student unless it has a name.
        temperature: T, the soft targets' temperature (Hinton et al. 2015).
        weight: w, the soft term's share of the loss; 1 - w goes to the labels' BCE.
        train: the trainer's settings.
    """

    data: str = ""
    teachers: list[MemberConfig] = field(default_factory=list)
    student: MemberConfig = field(default_factory=lambda: MemberConfig(model="deepfm"))
    temperature: float = param(1.0, gt=0.0)
    weight: float = param(0.5, ge=0.0, le=1.0)
    train: TrainConfig = field(default_factory=TrainConfig)


def resolve(config: DistillConfig) -> DistillConfig:
    """The teachers' models and hyperparameters read from their runs, the student's filled in."""
    if any(not t.init for t in config.teachers):
        raise ConfigError("teachers: every teacher is a trained run, given as init: RUN")
    teachers = resolve_members(config.teachers, 1, "teachers")
    student = resolve_members([config.student], 1, "student")[0]
    student.name = config.student.name or STUDENT
    if student.name in {t.name for t in teachers}:
        raise ConfigError(f"the student's name {student.name!r} is a teacher's; name it")
    return dataclasses.replace(config, teachers=teachers, student=student)


class FrozenTeachersGroup(ModelGroup):
    """``[teacher_1, ..., teacher_K, student]``: the teachers not trainable (not optimised, no
    L2), run without autograd and kept in evaluation mode while the student trains."""

    def __init__(self, teachers: Sequence[CTRModel], student: CTRModel,
                 names: Sequence[str]) -> None:
        super().__init__([*teachers, student], names)
        for teacher in teachers:
            teacher.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> FrozenTeachersGroup:
        super().train(mode)
        for teacher in self.models[:-1]:
            teacher.eval()
        return self

    def forward(self, batch: Batch) -> list[ModelOutput]:
        with torch.no_grad():
            teachers = [model(batch) for model in self.models[:-1]]
        return [*teachers, self.models[-1](batch)]


def build(config: DistillConfig, store: EncodedStore) -> Built:
    teachers = [build_member(t, store.feature_map) for t in config.teachers]
    student = build_member(config.student, store.feature_map)
    names = [*(t.name for t in config.teachers), config.student.name]
    params = {"temperature": config.temperature, "weight": config.weight}
    return Built(FrozenTeachersGroup(teachers, student, names),
                 EnsembleDistillation(names, **params), params, [*teachers, student], names)


def _absolute(path: str) -> str:
    return str(Path(path).resolve())


def _export_student(out: Path, folder: Path) -> str:
    return f"student {export_best_student(out, folder)} written to {folder}"


METHOD = Method(
    "distill", DistillConfig, build, resolve,
    help="distil one student from the averaged predictions of trained runs (Hinton et al.)",
    description=__doc__.split("\n\n")[0],
    flags=(
        Flag("--teachers", "teachers", nargs="+", metavar="RUN",
             help="trained run folders, RUN or RUN:member (alias of `teachers: [{init: RUN}, "
                  "...]`)",
             value=lambda runs, _: [{"init": _absolute(r)} for r in runs]),
        Flag("--student", "student.model", metavar="MODEL", type=str,
             help="the student's registry model (alias of student.model; default deepfm)"),
        Flag("--temperature", "temperature"),
        Flag("--weight", "weight"),
        Flag("--export-student", "", type=Path, metavar="DIR", after_run=_export_student,
             help="also write the student alone as a run folder to serve"),
    ),
)
