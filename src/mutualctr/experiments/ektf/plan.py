"""The runs of ``mutualctr experiment ektf``: its config, the sizes (``tiny``, ``small``,
``paper``) and the plan of runs, by label, that the chosen tables need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mutualctr.methods import dagfm, ektf
from mutualctr.methods.base import Method
from mutualctr.methods.dagfm import DAGFMConfig
from mutualctr.methods.ektf import (
    KD_BASELINES,
    LATEST_STUDENTS,
    EKTFConfig,
    latest_students,
    mlp_students,
)
from mutualctr.methods.members import StudentSpec
from mutualctr.training.config import TrainConfig
from mutualctr.training.objectives.ektf import VARIANTS

PARTS = ("table2", "ablation", "scaling", "kt")
KD_DAGFM = "dagfm"  # Table 5's KD-DAGFM row


@dataclass
class EKTFExperimentConfig:
    """What the experiment runs. ``size`` presets ``k``, ``k_range``, ``mlp_hidden``,
    ``train.epochs`` and ``train.batch_size`` (``tiny`` for a smoke test, ``small`` for a CPU,
    ``paper`` for the authors' settings); any of them given explicitly wins. ``seeds`` runs per
    configuration use ``train.seed``, ``train.seed + 1`` ..."""

    data: str = ""
    size: Literal["tiny", "small", "paper"] = "small"
    parts: tuple[str, ...] = PARTS
    seeds: int = 1
    k: int = 3  # students in Tables 2, 3 and 5
    k_range: tuple[int, ...] = (2, 3, 4, 6, 8, 10)
    mlp_hidden: tuple[int, ...] = (400, 400, 400)
    latest: tuple[str, ...] = LATEST_STUDENTS  # EKTF_Latest's students; empty: skip it
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise ValueError(f"parts: unknown {unknown}; choose from {list(PARTS)}")


SIZES: dict[str, EKTFExperimentConfig] = {
    "tiny": EKTFExperimentConfig(size="tiny", mlp_hidden=(32,), k=3, k_range=(2, 3),
                                 train=TrainConfig(epochs=1, batch_size=512)),
    "small": EKTFExperimentConfig(size="small", train=TrainConfig(epochs=4, batch_size=2048)),
    "paper": EKTFExperimentConfig(size="paper", k_range=tuple(range(2, 11)),
                                  train=TrainConfig(epochs=100, batch_size=10000)),
}


def size_preset(given: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen size's values, under everything given explicitly."""
    preset = SIZES.get(given.get("size", "small"), SIZES["small"])  # a bad size: from_dict says
    return {"k": preset.k, "k_range": list(preset.k_range),
            "mlp_hidden": list(preset.mlp_hidden),
            "train": {"epochs": preset.train.epochs, "batch_size": preset.train.batch_size}}


@dataclass(frozen=True)
class Job:
    """One run of a table: the method and its config (the experiment sets the data and the
    training settings)."""

    config: EKTFConfig | DAGFMConfig
    method: Method[Any]


def plan(size: EKTFExperimentConfig, parts: Sequence[str],
         latest: Sequence[str] = LATEST_STUDENTS) -> dict[str, Job]:
    """Every run the chosen parts need, by label (runs shared by several tables appear once)."""
    mlp = {"hidden_units": list(size.mlp_hidden)}

    def job(students: Sequence[StudentSpec], objective: str = "ektf") -> Job:
        return Job(EKTFConfig(students=list(students), objective=objective), ektf.METHOD)

    runs: dict[str, Job] = {}
    if "table2" in parts:
        runs["single_mlp"] = job(mlp_students(1, mlp), "independent")
        for model in latest:
            runs[f"single_{model}"] = job([StudentSpec(model)], "independent")
        runs[f"ektf_mlp_k{size.k}"] = job(mlp_students(size.k, mlp))
        if latest:
            runs["ektf_latest"] = job(latest_students(latest))
    if "ablation" in parts:
        for variant in VARIANTS:
            runs[ablation_label(size.k, variant)] = job(mlp_students(size.k, mlp), variant)
    if "scaling" in parts:
        for k in size.k_range:
            runs[f"ektf_mlp_k{k}"] = job(mlp_students(k, mlp))
    if "kt" in parts:
        for method in (*KD_BASELINES, "ektf"):
            runs[kt_label(size.k, method)] = job(mlp_students(size.k, mlp), method)
        runs[kt_label(size.k, KD_DAGFM)] = kd_dagfm(size)
    return runs


def kd_dagfm(size: EKTFExperimentConfig) -> Job:
    """KD-DAGFM for Table 5: a DCNv2 teacher (registry defaults but the size's MLP widths, which
    are DCNv2's own [400, 400, 400] except for ``tiny``) and a DAGFM student with the outer
    interaction, the authors' pairing for a cross-network teacher (their Criteo and MovieLens
    configs)."""
    config = DAGFMConfig(teacher=StudentSpec("dcnv2", {"hidden_units": list(size.mlp_hidden)}),
                         student=StudentSpec("dagfm", {"interaction": "outer"}))
    return Job(config, dagfm.METHOD)


def ablation_label(k: int, variant: str) -> str:
    return f"ektf_mlp_k{k}" if variant == "ektf" else f"ektf_mlp_k{k}_{variant}"


def kt_label(k: int, method: str) -> str:
    if method == KD_DAGFM:
        return "kd_dagfm"  # one DAGFM student, whatever K
    return f"ektf_mlp_k{k}" if method == "ektf" else f"{method}_mlp_k{k}"
