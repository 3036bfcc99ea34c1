"""The runs of ``mutualctr experiment ektf``: its config, the sizes (``tiny``, ``small``,
``paper``), the configurations the chosen tables need, by label, and the plan: every
configuration once per seed, in ``OUT/runs/<label>/seed<s>``, labelled ``label`` and
``seed``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mutualctr.experiments.engine import Job, seeded
from mutualctr.methods import dagfm, ektf
from mutualctr.methods.dagfm import DAGFMConfig
from mutualctr.methods.ektf import (
    KD_BASELINES,
    LATEST_STUDENTS,
    EKTFConfig,
    latest_students,
    mlp_students,
)
from mutualctr.methods.members import MemberConfig
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
    # Li et al. 4.1.5: batch 4096 on Criteo, ML-1M and iPinYou (10000 on KDD12 and KKBox:
    # --batch-size 10000)
    "paper": EKTFExperimentConfig(size="paper", k_range=tuple(range(2, 11)),
                                  train=TrainConfig(epochs=100, batch_size=4096)),
}


def size_preset(given: Mapping[str, Any]) -> dict[str, Any]:
    """The chosen size's values, under everything given explicitly."""
    preset = SIZES.get(given.get("size", "small"), SIZES["small"])  # a bad size: from_dict says
    return {"k": preset.k, "k_range": list(preset.k_range),
            "mlp_hidden": list(preset.mlp_hidden),
            "train": {"epochs": preset.train.epochs, "batch_size": preset.train.batch_size}}


RUNS = "runs"  # the run folders' folder in the experiment folder


def _job(label: str, config: EKTFConfig | DAGFMConfig) -> Job:
    """The configuration ``label`` (without data and seed: :func:`plan` sets them)."""
    method = dagfm.METHOD if isinstance(config, DAGFMConfig) else ektf.METHOD
    return Job(method, config, Path(RUNS) / label, {"label": label}, label)


def configurations(size: EKTFExperimentConfig, parts: Sequence[str],
                   latest: Sequence[str] = LATEST_STUDENTS) -> dict[str, Job]:
    """Every configuration the chosen parts need, by label (one shared by several tables
    appears once)."""
    mlp = {"hidden_units": list(size.mlp_hidden)}

    def job(students: Sequence[MemberConfig], objective: str = "ektf") -> EKTFConfig:
        return EKTFConfig(students=list(students), objective=objective)

    runs: dict[str, EKTFConfig | DAGFMConfig] = {}
    if "table2" in parts:
        runs["single_mlp"] = job(mlp_students(1, mlp), "independent")
        for model in latest:
            runs[f"single_{model}"] = job([MemberConfig(model=model)], "independent")
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
    return {label: _job(label, config) for label, config in runs.items()}


def plan(config: EKTFExperimentConfig, out: Path) -> list[Job]:
    """Every configuration of :func:`configurations` once per seed (``train.seed``,
    ``train.seed + 1`` ...), seed by seed, in ``out/runs/<label>/seed<s>``."""
    runs = configurations(config, config.parts, config.latest)
    return [seeded(job, seed, data=config.data, train=config.train, root=out)
            for seed in range(config.train.seed, config.train.seed + config.seeds)
            for job in runs.values()]


def kd_dagfm(size: EKTFExperimentConfig) -> DAGFMConfig:
    """KD-DAGFM for Table 5: a DCNv2 teacher (registry defaults but the size's MLP widths, which
    are DCNv2's own [400, 400, 400] except for ``tiny``) and a DAGFM student with the outer
    interaction, the authors' pairing for a cross-network teacher (their Criteo and MovieLens
    configs)."""
    return DAGFMConfig(
        teacher=MemberConfig(model="dcnv2", model_config={"hidden_units": list(size.mlp_hidden)}),
        student=MemberConfig(model="dagfm", model_config={"interaction": "outer"}))


def ablation_label(k: int, variant: str) -> str:
    return f"ektf_mlp_k{k}" if variant == "ektf" else f"ektf_mlp_k{k}_{variant}"


def kt_label(k: int, method: str) -> str:
    if method == KD_DAGFM:
        return "kd_dagfm"  # one DAGFM student, whatever K
    return f"ektf_mlp_k{k}" if method == "ektf" else f"{method}_mlp_k{k}"
