"""The runs of ``mutualctr experiment cetnet``: its config, the configurations the tables need
and the plan: every configuration once per seed, in ``OUT/runs/<key>/seed_<s>``, labelled with
its ``key``, ``table``, ``row``, ``method`` (the report's column or row label), ``scale`` and
``seed``; :func:`scorer` adds the ranking metrics (gAUC, NE) and the parameter count to each
run's record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mutualctr.config import Validated, param
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.experiments.cetnet import paper
from mutualctr.experiments.engine import Job, Score, seeded
from mutualctr.methods import cetnet
from mutualctr.methods import train as train_method
from mutualctr.methods.base import Method
from mutualctr.methods.cetnet import (
    ABLATIONS,
    CETNET,
    Variant,
    group_ids,
    with_ranking_metrics,
)
from mutualctr.methods.members import MemberConfig
from mutualctr.models.multi_embedding import ME_PREFIX
from mutualctr.runfolders.folder import PREDICTIONS_FILE
from mutualctr.runfolders.restore import load_trained
from mutualctr.training.config import TrainConfig
from mutualctr.training.objectives.cetnet import FusionMode
from mutualctr.training.trainer import Metrics

RUNS = "runs"  # the run folders' folder in the experiment folder
TABLES = ("scaling", "ablation", "main")
DEFAULT_TABLES = ("scaling", "ablation")
# Section 4.4.2: "Ours-sum, which sums the final embeddings, and Ours-concat, which concatenates
# them"; both are CETNet (confidence weights, KL, member losses), only the combination differs.
OURS_FUSION: dict[str, FusionMode] = {"Ours-sum": "confidence_sum", "Ours-concat": "confidence"}
SCALING_METHODS = ("SE", "ME", *OURS_FUSION)


@dataclass
class CETNetExperimentConfig(Validated):
    """What the experiment runs. ``model_config`` maps a registry name to hyperparameter
    overrides used everywhere that model appears (its SE, ME and CETNet forms alike).
    ``seeds`` runs per configuration use ``train.seed``, ``train.seed + 1`` ...; gAUC groups rows
    by ``train.user_field`` (the store's user field unless it says otherwise)."""

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "group_field": "write train.user_field (gAUC's groups, the same in every method)",
    }

    data: str = ""
    tables: tuple[str, ...] = DEFAULT_TABLES
    scaling_models: tuple[str, ...] = ("dnn", "pnn", "dcnv2", "finalmlp")
    scales: tuple[int, ...] = paper.SCALES
    pairs: tuple[str, ...] = ("dcnv2+finalmlp", "pnn+dnn")
    main_rows: tuple[str, ...] = paper.MAIN_ROWS  # a model alone, or CETNet over "a+b"
    main_embedding_dim: int = param(paper.MAIN_BASELINE_EMBEDDING_DIM, ge=1)
    member_embedding_dim: int = param(paper.MAIN_MEMBER_EMBEDDING_DIM, ge=1)
    alphas: tuple[float, ...] = paper.MAIN_ALPHAS  # main table: alpha picked on validation
    embedding_dim: int = param(paper.BASE_EMBEDDING_DIM, ge=1)  # the paper's base size
    alpha: float = param(0.1, ge=0.0)
    seeds: int = param(1, ge=1)
    model_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


def _job(key: str, table: str, row: str, label: str, scale: int,
         method_config: tuple[Method[Any], Any]) -> Job:
    """The configuration ``key``: where it goes in the report and what it runs (without data
    and seed: :func:`plan` sets them)."""
    method, config = method_config
    return Job(method, config, Path(RUNS) / key,
               {"key": key, "table": table, "row": row, "method": label, "scale": scale}, key)


def _single(name: str, overrides: dict[str, Any]) -> tuple[Method, Any]:
    return train_method.METHOD, train_method.IndependentConfig(model=name, model_config=overrides)


def _cetnet(models: Sequence[str], config: CETNetExperimentConfig, variant: Variant = CETNET,
            embedding_dim: int | None = None, alpha: float | None = None,
            ) -> tuple[Method, Any]:
    """CETNet over ``models`` (each with the config's ``model_config`` for it) at the config's
    base embedding size and alpha unless given."""
    size = embedding_dim or config.embedding_dim
    members = [MemberConfig(model=name, model_config={**config.model_config.get(name, {}),
                                                      "embedding_dim": size})
               for name in models]
    return cetnet.METHOD, cetnet.CETNetConfig(
        members=members, alpha=config.alpha if alpha is None else alpha,
        **variant.switches())


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _scaling_jobs(name: str, k: int, config: CETNetExperimentConfig) -> list[Job]:
    """SE, ME, Ours-sum and Ours-concat of ``name`` at ``k`` times the base embedding size."""
    d = config.embedding_dim
    own = config.model_config.get(name, {})
    jobs = [
        _job(f"scaling/{name}/se_{k}x", "scaling", name, "SE", k,
             _single(name, {**own, "embedding_dim": k * d})),
        _job(f"scaling/{name}/me_{k}x", "scaling", name, "ME", k,
             _single(f"{ME_PREFIX}{name}", {**own, "embedding_dim": d, "num_embeddings": k})),
    ]
    for label, fusion in OURS_FUSION.items():
        variant = replace(CETNET, label=label, fusion=fusion)
        jobs.append(_job(f"scaling/{name}/{_slug(label)}_{k}x", "scaling", name, label, k,
                         _cetnet([name] * k, config, variant)))
    return jobs


def _main_jobs(row: str, config: CETNetExperimentConfig) -> list[Job]:
    """Table 1's ``row``: a model alone at the baselines' embedding size, or CETNet over the
    ``+``-joined models at the members' size, once per alpha."""
    models = [m.strip() for m in row.split("+")]
    if len(models) == 1:
        overrides = {**config.model_config.get(row, {}),
                     "embedding_dim": config.main_embedding_dim}
        return [_job(f"main/{row}", "main", row, "alone", 1, _single(row, overrides))]
    return [_job(f"main/{'+'.join(models)}/alpha_{alpha:g}", "main", row, f"alpha {alpha:g}",
                 len(models), _cetnet(models, config, embedding_dim=config.member_embedding_dim,
                                      alpha=alpha))
            for alpha in config.alphas]


def configurations(config: CETNetExperimentConfig) -> list[Job]:
    """Every configuration the tables need; a model alone at ``1x`` is run once for both."""
    jobs: dict[Path, Job] = {}

    def base_job(name: str, table: str, row: str) -> Job:
        overrides = {**config.model_config.get(name, {}), "embedding_dim": config.embedding_dim}
        return _job(f"single/{name}", table, row, name, 1, _single(name, overrides))

    def add(job: Job) -> None:
        jobs.setdefault(job.out, job)

    if "scaling" in config.tables:
        for name in config.scaling_models:
            add(base_job(name, "scaling", name))
            for k in config.scales:
                for job in _scaling_jobs(name, k, config):
                    add(job)
    if "ablation" in config.tables:
        for pair in config.pairs:
            models = _parse_pair(pair)
            for name in models:
                add(base_job(name, "ablation", pair))
            for variant in ABLATIONS:
                add(_job(f"ablation/{'+'.join(models)}/{_slug(variant.label)}", "ablation",
                         pair, variant.label, len(models), _cetnet(models, config, variant)))
    if "main" in config.tables:
        for row in config.main_rows:
            for job in _main_jobs(row, config):
                add(job)
    return list(jobs.values())


def _parse_pair(text: str) -> list[str]:
    models = [m.strip() for m in text.split("+") if m.strip()]
    if len(models) < 2:
        raise ConfigError(f"pairs: {text!r} must name two or more models joined by '+'")
    return models


def plan(config: CETNetExperimentConfig, out: Path) -> list[Job]:
    """Every configuration of :func:`configurations` once per seed (``train.seed``,
    ``train.seed + 1`` ...), configuration by configuration, in ``out/runs/<key>/seed_<s>``."""
    if not config.data:
        raise ConfigError("no data: give --data DIR (an encoded store)")
    unknown = set(config.tables) - set(TABLES)
    if unknown:
        raise ConfigError(f"tables: unknown {sorted(unknown)}; choose from {list(TABLES)}")
    return [seeded(job, seed, data=config.data, train=config.train, root=out,
                   folder="seed_{seed}")
            for job in configurations(config)
            for seed in range(config.train.seed, config.train.seed + config.seeds)]


def scorer(config: CETNetExperimentConfig) -> Score:
    """What each run's record holds beyond ``metrics.json``: the monitored prediction's name
    (``monitor``), the parameter count and, per test prediction, gAUC by impressions and by
    users (grouped by ``train.user_field``) and normalized entropy against the training split's
    positive rate."""
    store = EncodedStore.open(config.data)
    groups = group_ids(store, config.train.user_field)
    background_rate = training_positive_rate(store)

    def score(job: Job, metrics: Metrics) -> Metrics:
        with np.load(job.out / PREDICTIONS_FILE) as saved:
            labels = np.asarray(saved["label"], dtype=np.float64)
            predictions = {name: saved[f"pred_{name}"] for name in metrics["test"]}
        test = with_ranking_metrics(metrics["test"], predictions, labels, groups,
                                    background_rate)
        return {**metrics, "monitor": metrics.get("monitor") or next(iter(metrics["test"])),
                "parameters": metrics.get("parameters") or _parameters(job.out), "test": test}

    return score


def _parameters(root: Path) -> int:
    trained = load_trained(root)
    return sum(p.numel() for module in (trained.group, trained.objective)
               for p in module.parameters())
