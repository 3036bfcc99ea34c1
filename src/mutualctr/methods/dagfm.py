"""KD-DAGFM (Tian et al., WSDM 2023): a teacher (DCNv2 by default) distilled into a DAGFM
student and finetuned, in three run folders under ``--out`` (finished ones reused).

``OUT/teacher`` trains the teacher (DCNv2 by default) alone on BCE; ``OUT/distill`` trains one
student (DAGFM) over the teacher's embedding with the teacher and the embedding frozen, under
:class:`~mutualctr.training.objectives.kd_baselines.DAGFMDistillation`; ``OUT/finetune`` trains
the distilled student alone, embedding included, on BCE. Each is a :class:`~.base.Stage` that
:func:`mutualctr.methods.runner.run` runs, reused once finished. The result reports the finetuned
student under its name (``dagfm_1``) and the teacher as ``<model>_teacher``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mutualctr.config import Validated, param
from mutualctr.data.store import EncodedStore
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method, Stage
from mutualctr.methods.members import (
    MemberConfig,
    build_member,
    from_scratch,
    positional_names,
)
from mutualctr.runfolders.restore import load_trained
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.distillation import DistillationGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.kd_baselines import DAGFM_ALPHA, DAGFM_BETA, DAGFMDistillation
from mutualctr.training.trainer import Metrics

TEACHER_SUFFIX = "_teacher"


@dataclass
class DAGFMConfig(Validated):
    """What ``mutualctr dagfm`` runs. ``alpha`` and ``beta`` weight the distillation loss
    ``alpha * BCE(y, p_s) + beta * mean((z_t - z_s)^2)``; the defaults are
    :data:`~mutualctr.training.objectives.kd_baselines.DAGFM_ALPHA` and ``DAGFM_BETA``."""

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "embedding_dim": "write teacher.model_config.embedding_dim and "
                         "student.model_config.embedding_dim (--embedding-dim sets both)",
    }

    data: str = ""
    teacher: MemberConfig = field(default_factory=lambda: MemberConfig(model="dcnv2"))
    student: MemberConfig = field(default_factory=lambda: MemberConfig(model="dagfm"))
    alpha: float = param(DAGFM_ALPHA, ge=0.0)
    beta: float = param(DAGFM_BETA, ge=0.0)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from_scratch([self.teacher, self.student], "KD-DAGFM's teacher and student")


def teacher_name(config: DAGFMConfig) -> str:
    """The teacher's prediction name, e.g. ``dcnv2_teacher``."""
    return f"{config.teacher.model}{TEACHER_SUFFIX}"


def student_name(config: DAGFMConfig) -> str:
    """The student's prediction name, e.g. ``dagfm_1``."""
    return positional_names([config.student])[0]


def _teacher(config: DAGFMConfig, store: EncodedStore, folders: Mapping[str, Path]) -> Built:
    """(a) The teacher alone on BCE."""
    name = teacher_name(config)
    model = build_member(config.teacher, store.feature_map)
    return Built(ModelGroup([model], [name]), IndependentObjective([name]), {}, [model], [name])


def _distill(config: DAGFMConfig, store: EncodedStore, folders: Mapping[str, Path]) -> Built:
    """(b) A fresh student on the trained teacher's frozen embedding, taught by the teacher."""
    teacher = load_trained(folders["teacher"]).group.models[0]
    student = build_member(config.student, store.feature_map)
    names = [teacher_name(config), student_name(config)]
    params = {"alpha": config.alpha, "beta": config.beta}
    return Built(DistillationGroup(teacher, student, names),
                 DAGFMDistillation(names, **params), params, [teacher, student], names)


def _finetune(config: DAGFMConfig, store: EncodedStore, folders: Mapping[str, Path]) -> Built:
    """(c) The distilled student alone, embedding trainable again, on BCE."""
    distilled = load_trained(folders["distill"]).group
    name = student_name(config)
    student = distilled.models[distilled.names.index(name)]
    return Built(ModelGroup([student], [name]), IndependentObjective([name]), {}, [student],
                 [name])


def combine(metrics: Mapping[str, Metrics]) -> Metrics:
    """The finetuned student's metrics with the teacher's beside them."""
    teacher, student = metrics["teacher"], metrics["finetune"]
    return {split: {**student[split], **teacher[split]} for split in student}


METHOD = Method(
    "dagfm", DAGFMConfig,
    stages=(Stage("teacher", _teacher), Stage("distill", _distill),
            Stage("finetune", _finetune)),
    combine=combine,
    help="KD-DAGFM: distil a teacher into a DAGFM student, then finetune it",
    description=__doc__.split("\n\n")[0],
    flags=(
        Flag("--teacher", "teacher.model", metavar="MODEL", type=str,
             help="the teacher's registry model (alias of teacher.model; default dcnv2)"),
        Flag("--interaction", "student.model_config.interaction", choices=("inner", "outer"),
             help="the DAGFM student's interaction (alias of "
                  "student.model_config.interaction)"),
        Flag("--embedding-dim", ("teacher.model_config.embedding_dim",
                                 "student.model_config.embedding_dim"), type=int,
             help="the teacher's table size, which the student shares (alias of "
                  "teacher.model_config.embedding_dim and student.model_config.embedding_dim; "
                  "default 16)"),
    ),
)
PHASES = tuple(stage.name for stage in METHOD.stages)
