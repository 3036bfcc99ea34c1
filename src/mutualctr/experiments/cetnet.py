"""``mutualctr experiment cetnet``: CETNet against single- and multi-embedding scaling, and the
paper's ablations (Liu et al., "A Collaborative Ensemble Framework for CTR Prediction").

Two tables, each a set of runs (one run folder per configuration and seed under
``OUT/runs/``), then a report built from the run folders only:

* ``scaling`` (the paper's Table 4 layout): for each base model (DNN, IPNN, DCNv2, FinalMLP) at
  embedding budget ``k`` times the base dimension ``D``: SE, the model with one ``k*D`` table;
  ME, the multi-embedding variant with ``k`` tables of ``D`` (Guo et al. 2024); ours, CETNet
  over ``k`` copies of the model, each with its own ``D`` table. The base model at ``1x`` is
  the reference.
* ``ablation`` (Table 3): CETNet over a pair of different models (DCNv2 + FinalMLP, IPNN +
  DNN), each variant of :data:`~mutualctr.methods.cetnet.ABLATIONS`, and each model
  alone.

Metrics on the test split of the selected (best-validation) weights: AUC, gAUC (impression-
weighted AUC per user, when the data has a user field) and logloss of the monitored prediction
(the fused one for CETNet). Everything is sized by the config (models, scales, seeds, epochs,
rows), so a small run finishes in minutes.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mutualctr import files
from mutualctr.cli_config import add_experiment_arguments, experiment_config
from mutualctr.config import TrainConfig, param
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.experiments import report
from mutualctr.methods import cetnet, independent, runner
from mutualctr.methods.base import Method
from mutualctr.methods.cetnet import ABLATIONS, CETNET, Variant, group_ids, with_gauc
from mutualctr.models.multi_embedding import ME_PREFIX
from mutualctr.training.restore import load_trained
from mutualctr.training.runfolder import PREDICTIONS_FILE

RESULTS_FILE = "record.json"  # one per run folder: its place in the tables and its scores
TABLES = ("scaling", "ablation")
DISPLAY = {"dnn": "DNN", "pnn": "IPNN", "dcnv2": "DCNv2", "finalmlp": "FinalMLP"}


@dataclass
class CETNetExperimentConfig:
    """What the experiment runs. ``model_config`` maps a registry name to hyperparameter
    overrides used everywhere that model appears (its SE, ME and CETNet forms alike).
    ``seeds`` runs per configuration use ``train.seed``, ``train.seed + 1`` ..."""

    data: str = ""
    tables: tuple[str, ...] = TABLES
    scaling_models: tuple[str, ...] = ("dnn", "pnn", "dcnv2", "finalmlp")
    scales: tuple[int, ...] = (2, 3, 4, 10)
    pairs: tuple[str, ...] = ("dcnv2+finalmlp", "pnn+dnn")
    embedding_dim: int = param(16, ge=1)
    alpha: float = param(0.1, ge=0.0)
    seeds: int = param(1, ge=1)
    group_field: str = "auto"  # gAUC groups: "auto" = the field named "user" if any, "" = none
    model_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class Job:
    """One configuration: its run folder key, where it goes in the report and what it runs.

    ``method`` and ``config`` are what :func:`mutualctr.methods.runner.run` trains (the
    experiment sets the data, the training settings and the seed).
    """

    key: str
    table: str
    row: str
    label: str
    scale: int
    method: Method
    config: Any


def _single(name: str, overrides: dict[str, Any]) -> tuple[Method, Any]:
    return independent.METHOD, independent.IndependentConfig(model=name, model_config=overrides)


def _cetnet(models: Sequence[str], config: CETNetExperimentConfig, variant: Variant
            ) -> tuple[Method, Any]:
    return cetnet.METHOD, cetnet.CETNetConfig(
        models=list(models), embedding_dim=config.embedding_dim, alpha=config.alpha,
        group_field=config.group_field, model_config=config.model_config, **variant.switches())


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def plan(config: CETNetExperimentConfig) -> list[Job]:
    """Every configuration the tables need; a model alone at ``1x`` is run once for both."""
    d = config.embedding_dim
    jobs: dict[str, Job] = {}

    def base_job(name: str, table: str, row: str) -> Job:
        overrides = {**config.model_config.get(name, {}), "embedding_dim": d}
        return Job(f"single/{name}", table, row, name, 1, *_single(name, overrides))

    def add(job: Job) -> None:
        jobs.setdefault(job.key, job)

    if "scaling" in config.tables:
        for name in config.scaling_models:
            add(base_job(name, "scaling", name))
            own = config.model_config.get(name, {})
            for k in config.scales:
                add(Job(f"scaling/{name}/se_{k}x", "scaling", name, "SE", k,
                        *_single(name, {**own, "embedding_dim": k * d})))
                me = {**own, "embedding_dim": d, "num_embeddings": k}
                add(Job(f"scaling/{name}/me_{k}x", "scaling", name, "ME", k,
                        *_single(f"{ME_PREFIX}{name}", me)))
                add(Job(f"scaling/{name}/cetnet_{k}x", "scaling", name, "CETNet", k,
                        *_cetnet([name] * k, config, CETNET)))
    if "ablation" in config.tables:
        for pair in config.pairs:
            models = _parse_pair(pair)
            for name in models:
                add(base_job(name, "ablation", pair))
            for variant in ABLATIONS:
                add(Job(f"ablation/{'+'.join(models)}/{_slug(variant.label)}", "ablation", pair,
                        variant.label, len(models), *_cetnet(models, config, variant)))
    return list(jobs.values())


def _parse_pair(text: str) -> list[str]:
    models = [m.strip() for m in text.split("+") if m.strip()]
    if len(models) < 2:
        raise ConfigError(f"pairs: {text!r} must name two or more models joined by '+'")
    return models


def run_job(
    job: Job, config: CETNetExperimentConfig, seed: int, out: Path, groups: np.ndarray | None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) one configuration in ``OUT/runs/<key>/seed_<s>``; write and return its
    record: the job's place in the tables, the seed and the test metrics with gAUC."""
    root = out / "runs" / job.key / f"seed_{seed}"
    train = replace(config.train, seed=seed)
    result = runner.run(job.method, replace(job.config, data=config.data, train=train), root,
                        overwrite=overwrite)
    monitor = result.metrics.get("monitor") or next(iter(result.metrics["test"]))
    with np.load(root / PREDICTIONS_FILE) as saved:
        labels = np.asarray(saved["label"], dtype=np.float64)
        predictions = {name: saved[f"pred_{name}"] for name in result.metrics["test"]}
    parameters = result.metrics.get("parameters") or _parameters(root)
    record = {"key": job.key, "table": job.table, "row": job.row, "method": job.label,
              "scale": job.scale, "seed": seed, "monitor": monitor, "parameters": parameters,
              "test": with_gauc(result.metrics["test"], predictions, labels, groups)}
    files.write_json(root / RESULTS_FILE, record)
    return record


def _parameters(root: Path) -> int:
    trained = load_trained(root)
    return sum(p.numel() for module in (trained.group, trained.objective)
               for p in module.parameters())


def load_records(out: Path) -> list[dict[str, Any]]:
    """Every run's record under ``OUT/runs`` (the report is built from these alone)."""
    return [json.loads(p.read_text()) for p in sorted((out / "runs").rglob(RESULTS_FILE))]


def _cell(records: list[dict[str, Any]], metric: str) -> str:
    values = [r["test"][r["monitor"]][metric] for r in records]
    if not values or any(math.isnan(v) for v in values):
        return "n/a"
    return report.format_mean_std(values) if len(values) > 1 else f"{values[0]:.4f}"


def _select(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r[k] == v for k, v in where.items())]


def scaling_table(
    records: list[dict[str, Any]], config: CETNetExperimentConfig, metric: str
) -> str:
    """Table 4 layout: a row per base model; its ``1x`` value, then SE / ME / CETNet per scale."""
    header = ["model", "1x"] + [f"{m} {k}x" for k in config.scales for m in ("SE", "ME", "CETNet")]
    rows = []
    for name in config.scaling_models:
        cells = [_cell(_select(records, key=f"single/{name}"), metric)]
        for k in config.scales:
            for method in ("SE", "ME", "CETNet"):
                cells.append(_cell(_select(records, table="scaling", row=name, method=method,
                                           scale=k), metric))
        rows.append([DISPLAY.get(name, name), *cells])
    return report.markdown_table(header, rows)


def ablation_table(records: list[dict[str, Any]], config: CETNetExperimentConfig) -> str:
    """Table 3 layout: a row per variant (and per model alone), AUC / gAUC / logloss per pair."""
    header = ["variant"] + [
        f"{_pair_title(p)} {m}" for p in config.pairs for m in ("AUC", "gAUC", "logloss")
    ]
    rows = []
    for variant in ABLATIONS:
        cells = []
        for pair in config.pairs:
            found = _select(records, table="ablation", row=pair, method=variant.label)
            cells += [_cell(found, m) for m in ("auc", "gauc", "logloss")]
        rows.append([variant.label, *cells])
    for position in range(max(len(_parse_pair(p)) for p in config.pairs)):
        cells = []
        for pair in config.pairs:
            models = _parse_pair(pair)
            found = (_select(records, key=f"single/{models[position]}")
                     if position < len(models) else [])
            cells += [_cell(found, m) for m in ("auc", "gauc", "logloss")]
        rows.append([f"model {position + 1} alone", *cells])
    return report.markdown_table(header, rows)


def _pair_title(pair: str) -> str:
    return " + ".join(DISPLAY.get(m, m) for m in _parse_pair(pair))


def write_report(out: Path, config: CETNetExperimentConfig) -> str:
    """``OUT/report.md`` and ``OUT/results.csv`` from the run folders; returns the markdown."""
    records = load_records(out)
    parts = ["# CETNet experiment", "",
             f"Data: `{config.data}`; base embedding dim {config.embedding_dim}; "
             f"alpha {config.alpha}; {config.seeds} seed(s) from {config.train.seed}; "
             "test-split metrics of the best-validation weights (CETNet: the fused "
             "prediction).", ""]
    if "scaling" in config.tables:
        for metric in ("auc", "gauc", "logloss"):
            parts += [f"## Scaling (Table 4 layout): {metric}", "",
                      scaling_table(records, config, metric), ""]
    if "ablation" in config.tables:
        parts += ["## Ablation (Table 3 layout)", "", ablation_table(records, config), ""]
    text = "\n".join(parts)
    files.write_text(out / "report.md", text)
    report.write_csv(out / "results.csv", [
        {k: r[k] for k in ("table", "row", "method", "scale", "seed", "parameters")}
        | {"prediction": name} | values
        for r in records for name, values in r["test"].items()
    ])
    return text


def run_experiment(
    config: CETNetExperimentConfig, out: Path, overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Run every job of :func:`plan` for every seed, then write the report."""
    if not config.data:
        raise ConfigError("no data: give --data DIR (an encoded store)")
    unknown = set(config.tables) - set(TABLES)
    if unknown:
        raise ConfigError(f"tables: unknown {sorted(unknown)}; choose from {list(TABLES)}")
    groups = group_ids(EncodedStore.open(config.data), config.group_field)
    jobs = plan(config)
    for i, job in enumerate(jobs, start=1):
        for seed in range(config.train.seed, config.train.seed + config.seeds):
            log(f"[{i}/{len(jobs)}] {job.key} seed {seed}")
            record = run_job(job, config, seed, out, groups, overwrite)
            m = record["test"][record["monitor"]]
            log(f"    auc {m['auc']:.5f} gauc {m['gauc']:.5f} logloss {m['logloss']:.5f}")
    return write_report(out, config)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cetnet",
        help="CETNet vs SE/ME scaling (Table 4) and its ablations (Table 3)",
        description="Run the CETNet experiment on an encoded store and write OUT/report.md.",
    )
    add_experiment_arguments(parser, keys="data, tables, scaling_models, scales, pairs, "
                             "embedding_dim, alpha, seeds, group_field, model_config, train")
    parser.add_argument("--tables", nargs="+", choices=TABLES, help="alias of `tables`")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild OUT/report.md and OUT/results.csv from the run folders")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    config = experiment_config(CETNetExperimentConfig, args, {"tables": args.tables})
    if config is None:
        return 0
    if args.report_only:
        print(write_report(args.out, config))
    else:
        print(run_experiment(config, args.out, args.overwrite))
    return 0
