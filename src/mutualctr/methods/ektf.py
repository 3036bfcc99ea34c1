"""EKTF (Li et al.): K students over one shared embedding, taught by their own ensemble with the
examination mechanism; its ablations and the knowledge-transfer baselines over the same
students.

``objective`` picks what trains the students: ``independent`` (plain training; a single
student keeps its own embedding), an EKTF variant (``ektf``, ``only_kd``, ``only_dml``,
``no_examination``, ``mean``) or a KD baseline (``online_kd``, ``kdcl``, ``eckd``); two or more
students always share one embedding. Student sets from the paper: ``EKTF_MLP`` (homogeneous
MLPs [400, 400, 400] with batch norm and dropout 0.1, embedding 16, as in the authors' logs) and
``EKTF_Latest`` (PNN, FINAL with one block and ECN). KD-DAGFM, the distillation baseline of the
paper's Table 5, is the :mod:`.dagfm` method.

Each epoch reports the teacher and every student; early stopping watches the teacher.
``mutualctr ektf --export-best DIR`` writes the best student (validation AUC) as a standalone
single-model run folder for serving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mutualctr.config import Validated, to_dict
from mutualctr.data.schema import FeatureMap
from mutualctr.data.store import EncodedStore
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method
from mutualctr.methods.dagfm import PHASES, TEACHER_SUFFIX
from mutualctr.methods.members import (
    MemberConfig,
    build_member,
    from_scratch,
    positional_names,
)
from mutualctr.models.base import CTRModel
from mutualctr.runfolders.folder import MODEL_SPEC_FILE, RunFolder, read_metrics
from mutualctr.runfolders.restore import load_trained, model_spec
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup
from mutualctr.training.objectives.base import ENSEMBLE, Objective
from mutualctr.training.objectives.ektf import TEACHER, VARIANTS, EKTFObjective
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.kd_baselines import ECKD, KDCL, OnlineKD

MLP_STUDENT: dict[str, Any] = {"hidden_units": [400, 400, 400], "batch_norm": True,
                               "dropout": 0.1}
LATEST_STUDENTS: tuple[str, ...] = ("pnn", "final", "ecn")
# EKTF_Latest's FINAL is FINAL(1B), one block (section 4.3.3, Table 4's EKTF_FINAL(1B) against
# the two-block FINAL(2B) baseline of Table 2); its one block is FINAL's first, the field-gated
# one, as in the authors' EKTF_L student (salmon1802/KDEF, src/Backbone.py, FinalNet).
LATEST_OVERRIDES: dict[str, dict[str, Any]] = {"final": {"num_blocks": 1,
                                                         "use_field_gate": True}}
KD_BASELINES = ("online_kd", "kdcl", "eckd")
OBJECTIVES = ("independent", *VARIANTS, *KD_BASELINES)
Objectives = Literal["independent", "ektf", "only_kd", "only_dml", "no_examination", "mean",
                     "online_kd", "kdcl", "eckd"]
ENSEMBLE_NAMES = (TEACHER, ENSEMBLE)  # a group's combined prediction, by objective


def mlp_students(k: int, overrides: Mapping[str, Any] | None = None) -> list[MemberConfig]:
    """EKTF_MLP: ``k`` identical DNN students (the authors' MLP settings unless overridden)."""
    return [MemberConfig(model="dnn", model_config={**MLP_STUDENT, **(overrides or {})})
            for _ in range(k)]


def latest_students(models: Sequence[str] = LATEST_STUDENTS) -> list[MemberConfig]:
    """EKTF_Latest: heterogeneous students, each with its registry (paper) defaults except
    :data:`LATEST_OVERRIDES` (FINAL with one block)."""
    return [MemberConfig(model=model, model_config=dict(LATEST_OVERRIDES.get(model, {})))
            for model in models]


def build_students(feature_map: FeatureMap, members: Sequence[MemberConfig]
                   ) -> SharedEmbeddingGroup:
    """The students over one shared embedding (their ``embedding_dim`` must agree)."""
    students = [build_member(member, feature_map) for member in members]
    return SharedEmbeddingGroup(students, positional_names(members))


@dataclass
class EKTFConfig(Validated):
    """What ``mutualctr ektf`` runs (stored as the run folder's ``config.yaml``).

    Attributes:
        data: encoded store folder, from `mutualctr data prepare`.
        students: the students, registry models with their hyperparameters, trained from
            scratch over one embedding of the size they agree on (default: three MLPs,
            EKTF_MLP, at embedding_dim 16).
        objective: what trains the students: independent, an EKTF variant or a KD baseline.
        detach_weights: treat the examination weights as constants (default: gradients flow
            through them, as in the authors' code).
        train: the trainer's settings.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "embedding_dim": "write each student's model_config.embedding_dim (--embedding-dim "
                         "sets it in every student)",
    }

    data: str = ""
    students: list[MemberConfig] = field(default_factory=lambda: mlp_students(3))
    objective: Objectives = "ektf"
    detach_weights: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not self.students:
            raise ValueError("students: need at least one student")
        from_scratch(self.students, "EKTF's students")


def build_objective(config: EKTFConfig, models: Sequence[CTRModel], names: list[str]
                    ) -> tuple[Objective, dict[str, Any]]:
    """The objective and the keyword arguments that rebuild it (for ``model.json``)."""
    params: dict[str, Any]
    if config.objective == "independent":
        return IndependentObjective(names), {}
    if config.objective in VARIANTS:
        params = {"variant": config.objective, "detach_weights": config.detach_weights}
        return EKTFObjective(names, **params), params
    params = {"temperature": 1.0, "alpha": 1.0}
    if config.objective == "eckd":
        params["representation_dims"] = [m.representation_dim for m in models]
        return ECKD(names, **params), params
    cls = OnlineKD if config.objective == "online_kd" else KDCL
    return cls(names, **params), params


def build(config: EKTFConfig, store: EncodedStore) -> Built:
    """A single student keeps its own embedding; two or more share one."""
    names = positional_names(config.students)
    if len(config.students) == 1:
        model = build_member(config.students[0], store.feature_map)
        group: ModelGroup = ModelGroup([model], names)
    else:
        group = build_students(store.feature_map, config.students)
    models = list(group.models)
    return Built(group, *build_objective(config, models, names), models, names)


def students_ranked(metrics: Mapping[str, Any]) -> list[str]:
    """A run's student predictions, best first by validation AUC."""
    names = [n for n in metrics["valid"]
             if n not in ENSEMBLE_NAMES and not n.endswith(TEACHER_SUFFIX)]
    return sorted(names, key=lambda n: -metrics["valid"][n]["auc"])


def export_best_student(run: str | Path, out: str | Path) -> str:
    """Write the run's best student (validation AUC) as a single-model run folder ``out``
    (``model.json`` + ``model.pt``, loadable by :func:`~mutualctr.runfolders.restore.
    load_trained`); the student keeps a copy of the shared embedding. Returns its name."""
    run = Path(run)
    if not (run / MODEL_SPEC_FILE).exists() and (run / PHASES[-1]).is_dir():
        run = run / PHASES[-1]  # a KD-DAGFM run: its student is the finetuned one
    trained = load_trained(run)
    name = students_ranked(read_metrics(run))[0]
    model = trained.group.models[trained.group.names.index(name)]
    with RunFolder.open(out, {"exported_from": str(run.resolve()), "member": name},
                        overwrite=True) as folder:
        folder.write_model_spec(model_spec([name], [model], IndependentObjective([name]), {},
                                           trained.feature_map))
        folder.write_weights({"members": {name: model.state_dict()}, "objective": {}})
    return name


def _mlp_students(k: int | None, hidden: Sequence[int] | None) -> list[dict[str, Any]]:
    overrides = {"hidden_units": list(hidden)} if hidden else {}
    return to_dict(mlp_students(3 if k is None else k, overrides))


def _export_best(out: Path, folder: Path) -> str:
    return f"best student {export_best_student(out, folder)} written to {folder}"


METHOD = Method(
    "ektf", EKTFConfig, build,
    help="train K students over one embedding with EKTF (or a KD baseline)",
    description=__doc__.split("\n\n")[0],
    flags=(
        Flag("--k", "students", type=int, exclusive="students",
             help="K MLP students (alias of `students`; default 3)",
             value=lambda k, given: _mlp_students(k, given.get("hidden"))),
        Flag("--students", "students", nargs="+", metavar="MODEL", exclusive="students",
             help="heterogeneous students by registry name, e.g. pnn final ecn (alias of "
                  "`students`)",
             value=lambda models, _: to_dict(latest_students(models))),
        Flag("--hidden", "students", type=int, nargs="+",
             help="the MLP students' hidden units (with --k; default 400 400 400)",
             value=lambda hidden, given: None if given.get("k") is not None
             or given.get("students") else _mlp_students(None, hidden)),
        Flag("--objective", "objective"),
        Flag("--detach-weights", "detach_weights", const=True),
        Flag("--embedding-dim", "students[].model_config.embedding_dim", type=int,
             help="the students' embedding size (alias of every student's "
                  "model_config.embedding_dim; default 16)"),
        Flag("--export-best", "", type=Path, metavar="DIR", after_run=_export_best,
             help="also write the best student as a standalone run folder"),
    ),
)
