"""KD-DAGFM (Tian et al., WSDM 2023): a teacher distilled into a DAGFM student, in three runs.

``OUT/teacher`` trains the teacher (DCNv2 by default) alone on BCE; ``OUT/distill`` trains one
student (DAGFM) over the teacher's embedding with the teacher and the embedding frozen, under
:class:`~mutualctr.training.objectives.kd_baselines.DAGFMDistillation`; ``OUT/finetune`` trains
the distilled student alone, embedding included, on BCE. Each phase is a run of
:func:`mutualctr.methods.runner.run`, reused once finished. The result reports the finetuned
student under its name (``dagfm_1``) and the teacher as ``<model>_teacher``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mutualctr.config import param
from mutualctr.data.store import EncodedStore
from mutualctr.methods.base import Built, Method
from mutualctr.methods.members import StudentSpec, build_student, positional_names
from mutualctr.methods.runner import RunResult
from mutualctr.methods.runner import run as run_phase
from mutualctr.runs.restore import load_trained
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.distillation import DistillationGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.kd_baselines import DAGFM_ALPHA, DAGFM_BETA, DAGFMDistillation

PHASES = ("teacher", "distill", "finetune")
TEACHER_SUFFIX = "_teacher"


@dataclass
class DAGFMConfig:
    """What ``mutualctr dagfm`` runs. ``alpha`` and ``beta`` weight the distillation loss
    ``alpha * BCE(y, p_s) + beta * mean((z_t - z_s)^2)``; the defaults are
    :data:`~mutualctr.training.objectives.kd_baselines.DAGFM_ALPHA` and ``DAGFM_BETA``."""

    data: str = ""
    teacher: StudentSpec = field(default_factory=lambda: StudentSpec("dcnv2"))
    student: StudentSpec = field(default_factory=lambda: StudentSpec("dagfm"))
    alpha: float = param(DAGFM_ALPHA, ge=0.0)
    beta: float = param(DAGFM_BETA, ge=0.0)
    embedding_dim: int = param(16, ge=1)
    train: TrainConfig = field(default_factory=TrainConfig)


def teacher_name(config: DAGFMConfig) -> str:
    """The teacher's prediction name, e.g. ``dcnv2_teacher``."""
    return f"{config.teacher.model}{TEACHER_SUFFIX}"


def student_name(config: DAGFMConfig) -> str:
    """The student's prediction name, e.g. ``dagfm_1``."""
    return positional_names([config.student.model])[0]


def _teacher(config: DAGFMConfig, store: EncodedStore) -> Built:
    """(a) The teacher alone on BCE."""
    name = teacher_name(config)
    model = build_student(config.teacher, store.feature_map, config.embedding_dim)
    return Built(ModelGroup([model], [name]), IndependentObjective([name]), {}, [model], [name])


def _distill(teacher_run: Path) -> Method[DAGFMConfig]:
    """(b) A fresh student on the trained teacher's frozen embedding, taught by the teacher."""

    def build(config: DAGFMConfig, store: EncodedStore) -> Built:
        teacher = load_trained(teacher_run).group.models[0]
        student = build_student(config.student, store.feature_map, config.embedding_dim)
        names = [teacher_name(config), student_name(config)]
        params = {"alpha": config.alpha, "beta": config.beta}
        return Built(DistillationGroup(teacher, student, names),
                     DAGFMDistillation(names, **params), params, [teacher, student], names)

    return Method("dagfm_distill", DAGFMConfig, build)


def _finetune(distill_run: Path) -> Method[DAGFMConfig]:
    """(c) The distilled student alone, embedding trainable again, on BCE."""

    def build(config: DAGFMConfig, store: EncodedStore) -> Built:
        distilled = load_trained(distill_run).group
        name = student_name(config)
        student = distilled.models[distilled.names.index(name)]
        return Built(ModelGroup([student], [name]), IndependentObjective([name]), {}, [student],
                     [name])

    return Method("dagfm_finetune", DAGFMConfig, build)


TEACHER_PHASE = Method("dagfm_teacher", DAGFMConfig, _teacher)


def run(config: DAGFMConfig, out: str | Path, *, overwrite: bool = False,
        log: TextIO | None = None) -> RunResult:
    """The three phases into ``out/teacher``, ``out/distill`` and ``out/finetune``.

    Returns the finetuned student's metrics with the teacher's beside them.
    """
    folders = {name: Path(out) / name for name in PHASES}
    methods = (TEACHER_PHASE, _distill(folders["teacher"]), _finetune(folders["distill"]))
    results = [run_phase(method, config, folders[name], overwrite=overwrite, log=log)
               for method, name in zip(methods, PHASES, strict=True)]
    teacher, student = results[0].metrics, results[-1].metrics
    metrics = {split: {**student[split], **teacher[split]} for split in student}
    return RunResult(metrics, reused=all(r.reused for r in results),
                     primary=results[-1].primary)
