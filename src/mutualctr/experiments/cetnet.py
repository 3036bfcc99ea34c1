"""``mutualctr experiment cetnet``: CETNet against single- and multi-embedding scaling, and the
paper's ablations (Liu et al., "A Collaborative Ensemble Framework for CTR Prediction").

Three tables, each a set of runs (one run folder per configuration and seed under
``OUT/runs/``), then a report built from the run folders only:

* ``main`` (the paper's Table 1, section 4.2; not run by default, it needs a store with
  behaviour sequences): baselines alone at embedding 64 (xDeepFM, DCNv2, DHEN, Wukong, DIN,
  DIEN, InterFormer) and CETNet pairs of members at 32 (DIN + DIEN, InterFormer + InterFormer,
  + DCNv2, + DHEN), each pair at every ``alpha`` of :data:`~cetnet_paper.MAIN_ALPHAS`, the one
  with the best mean validation AUC reported (section 4.1.3 tunes alpha on validation).

* ``scaling`` (the paper's Table 4, section 4.4.2): for each base model (DNN, IPNN, DCNv2,
  FinalMLP) at embedding budget ``k`` times the base size ``D`` (the paper's 10): SE, the model
  with one ``k*D`` table; ME, the multi-embedding variant with ``k`` tables of ``D`` (Guo et al.
  2024); Ours-sum and Ours-concat, CETNet over ``k`` copies of the model, each with its own
  ``D`` table, fusing by the confidence-weighted sum or concatenation of the representations.
  The base model at ``D`` is the reference.
* ``ablation`` (Table 3): CETNet over a pair of different models (DCNv2 + FinalMLP, IPNN +
  DNN), each variant of :data:`~mutualctr.methods.cetnet.ABLATIONS`, and each model
  alone.

Metrics on the test split of the selected (best-validation) weights: AUC, gAUC weighted by
impressions and by users (when the data has a user field), logloss and normalized entropy
against the training positive rate, of the monitored prediction (the fused one for CETNet).
The report prints Liu et al.'s own figures (:mod:`~mutualctr.experiments.cetnet_paper`)
beside ours with the paper's improvement measure, and pairs configurations by seed for its
significance tests. Everything is sized by the config (models, scales, seeds, epochs, rows), so
a small run finishes in minutes.
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

from mutualctr import files, statistics
from mutualctr.cli_config import add_experiment_arguments, experiment_config
from mutualctr.config import param
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.experiments import cetnet_paper as paper
from mutualctr.experiments import report
from mutualctr.methods import cetnet, independent, runner
from mutualctr.methods.base import Method
from mutualctr.methods.cetnet import (
    ABLATIONS,
    CETNET,
    Variant,
    group_ids,
    with_ranking_metrics,
)
from mutualctr.models.multi_embedding import ME_PREFIX
from mutualctr.runs.folder import PREDICTIONS_FILE
from mutualctr.runs.restore import load_trained
from mutualctr.training.config import TrainConfig
from mutualctr.training.objectives.cetnet import FusionMode

RESULTS_FILE = "record.json"  # one per run folder: its place in the tables and its scores
TABLES = ("scaling", "ablation", "main")
DEFAULT_TABLES = ("scaling", "ablation")
DISPLAY = {"dnn": "DNN", "pnn": "IPNN", "dcnv2": "DCNv2", "finalmlp": "FinalMLP",
           "xdeepfm": "xDeepFM", "dhen": "DHEN", "wukong": "Wukong", "din": "DIN",
           "dien": "DIEN", "interformer": "InterFormer"}
# Section 4.4.2: "Ours-sum, which sums the final embeddings, and Ours-concat, which concatenates
# them"; both are CETNet (confidence weights, KL, member losses), only the combination differs.
OURS_FUSION: dict[str, FusionMode] = {"Ours-sum": "confidence_sum", "Ours-concat": "confidence"}
SCALING_METHODS = ("SE", "ME", *OURS_FUSION)
METRIC_NAMES = {"auc": "AUC", "gauc_impressions": "gAUC (impressions)",
                "gauc_users": "gAUC (users)", "logloss": "logloss", "normalized_entropy": "NE"}


@dataclass
class CETNetExperimentConfig:
    """What the experiment runs. ``model_config`` maps a registry name to hyperparameter
    overrides used everywhere that model appears (its SE, ME and CETNet forms alike).
    ``seeds`` runs per configuration use ``train.seed``, ``train.seed + 1`` ..."""

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


def _cetnet(models: Sequence[str], config: CETNetExperimentConfig, variant: Variant = CETNET,
            embedding_dim: int | None = None, alpha: float | None = None,
            ) -> tuple[Method, Any]:
    """CETNet over ``models`` at the config's base embedding size and alpha unless given."""
    return cetnet.METHOD, cetnet.CETNetConfig(
        models=list(models), embedding_dim=embedding_dim or config.embedding_dim,
        alpha=config.alpha if alpha is None else alpha, group_field=config.group_field,
        model_config=config.model_config, **variant.switches())


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def _scaling_jobs(name: str, k: int, config: CETNetExperimentConfig) -> list[Job]:
    """SE, ME, Ours-sum and Ours-concat of ``name`` at ``k`` times the base embedding size."""
    d = config.embedding_dim
    own = config.model_config.get(name, {})
    jobs = [
        Job(f"scaling/{name}/se_{k}x", "scaling", name, "SE", k,
            *_single(name, {**own, "embedding_dim": k * d})),
        Job(f"scaling/{name}/me_{k}x", "scaling", name, "ME", k,
            *_single(f"{ME_PREFIX}{name}", {**own, "embedding_dim": d, "num_embeddings": k})),
    ]
    for label, fusion in OURS_FUSION.items():
        variant = replace(CETNET, label=label, fusion=fusion)
        jobs.append(Job(f"scaling/{name}/{_slug(label)}_{k}x", "scaling", name, label, k,
                        *_cetnet([name] * k, config, variant)))
    return jobs


def _main_jobs(row: str, config: CETNetExperimentConfig) -> list[Job]:
    """Table 1's ``row``: a model alone at the baselines' embedding size, or CETNet over the
    ``+``-joined models at the members' size, once per alpha."""
    models = [m.strip() for m in row.split("+")]
    if len(models) == 1:
        overrides = {**config.model_config.get(row, {}),
                     "embedding_dim": config.main_embedding_dim}
        return [Job(f"main/{row}", "main", row, "alone", 1, *_single(row, overrides))]
    return [Job(f"main/{'+'.join(models)}/alpha_{alpha:g}", "main", row, f"alpha {alpha:g}",
                len(models), *_cetnet(models, config, embedding_dim=config.member_embedding_dim,
                                      alpha=alpha))
            for alpha in config.alphas]


def plan(config: CETNetExperimentConfig) -> list[Job]:
    """Every configuration the tables need; a model alone at ``1x`` is run once for both."""
    jobs: dict[str, Job] = {}

    def base_job(name: str, table: str, row: str) -> Job:
        overrides = {**config.model_config.get(name, {}), "embedding_dim": config.embedding_dim}
        return Job(f"single/{name}", table, row, name, 1, *_single(name, overrides))

    def add(job: Job) -> None:
        jobs.setdefault(job.key, job)

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
                add(Job(f"ablation/{'+'.join(models)}/{_slug(variant.label)}", "ablation", pair,
                        variant.label, len(models), *_cetnet(models, config, variant)))
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


def run_job(
    job: Job, config: CETNetExperimentConfig, seed: int, out: Path, groups: np.ndarray | None,
    background_rate: float, overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) one configuration in ``OUT/runs/<key>/seed_<s>``; write and return its
    record: the job's place in the tables, the seed and the test metrics with gAUCs and NE
    (against ``background_rate``, the training positive rate)."""
    root = out / "runs" / job.key / f"seed_{seed}"
    train = replace(config.train, seed=seed)
    result = runner.run(job.method, replace(job.config, data=config.data, train=train), root,
                        overwrite=overwrite)
    monitor = result.metrics.get("monitor") or next(iter(result.metrics["test"]))
    with np.load(root / PREDICTIONS_FILE) as saved:
        labels = np.asarray(saved["label"], dtype=np.float64)
        predictions = {name: saved[f"pred_{name}"] for name in result.metrics["test"]}
    parameters = result.metrics.get("parameters") or _parameters(root)
    test = with_ranking_metrics(result.metrics["test"], predictions, labels, groups,
                                background_rate)
    record = {"key": job.key, "table": job.table, "row": job.row, "method": job.label,
              "scale": job.scale, "seed": seed, "monitor": monitor, "parameters": parameters,
              "valid": result.metrics["valid"], "test": test}
    files.write_json(root / RESULTS_FILE, record)
    return record


def _parameters(root: Path) -> int:
    trained = load_trained(root)
    return sum(p.numel() for module in (trained.group, trained.objective)
               for p in module.parameters())


def load_records(out: Path) -> list[dict[str, Any]]:
    """Every run's record under ``OUT/runs`` (the report is built from these alone)."""
    return [json.loads(p.read_text()) for p in sorted((out / "runs").rglob(RESULTS_FILE))]


def _score(record: dict[str, Any], metric: str) -> float:
    """The monitored prediction's ``metric`` (nan when the run did not compute it)."""
    return record["test"][record["monitor"]].get(metric, math.nan)


def _by_seed(records: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """One value per seed: a configuration's independent samples (see :func:`significance`)."""
    return {r["seed"]: _score(r, metric) for r in records}


def _mean(records: list[dict[str, Any]], metric: str) -> float:
    values = [_score(r, metric) for r in records]
    return math.fsum(values) / len(values) if values else math.nan


def _cell(records: list[dict[str, Any]], metric: str) -> str:
    values = [_score(r, metric) for r in records]
    if not values or any(math.isnan(v) for v in values):
        return "n/a"
    return statistics.format_mean_std(values) if len(values) > 1 else f"{values[0]:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else report.format_percent(value)


def _figure(value: float | None, digits: int = 5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _select(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r[k] == v for k, v in where.items())]


def _scaling_records(records: list[dict[str, Any]], name: str, method: str, k: int
                     ) -> list[dict[str, Any]]:
    if method == paper.BASE:
        return _select(records, key=f"single/{name}")
    return _select(records, table="scaling", row=name, method=method, scale=k)


def _scaling_rows(config: CETNetExperimentConfig) -> list[tuple[str, str, bool]]:
    """``(model, method, first row of the model)`` in the paper's Table 4 order."""
    return [(name, method, i == 0) for name in config.scaling_models
            for i, method in enumerate(SCALING_METHODS)]


def scaling_table(
    records: list[dict[str, Any]], config: CETNetExperimentConfig, metric: str
) -> str:
    """Table 4 layout: four rows per base model (SE, ME, Ours-sum, Ours-concat), its ``base``
    value once (the paper's spanning cell), then one column per scale."""
    header = ["model", "method", "base"] + [f"{k}x" for k in config.scales]
    rows = []
    for name, method, first in _scaling_rows(config):
        base = _cell(_scaling_records(records, name, paper.BASE, 1), metric) if first else ""
        cells = [_cell(_scaling_records(records, name, method, k), metric)
                 for k in config.scales]
        rows.append([DISPLAY.get(name, name) if first else "", method, base, *cells])
    return report.markdown_table(header, rows)


def scaling_beside_paper(
    records: list[dict[str, Any]], config: CETNetExperimentConfig, table: int,
    improvements: bool,
) -> str:
    """Our AUC (or its improvement over the base model) beside Liu et al.'s Table ``table``
    figures on Criteo and Avazu, per scale; the paper has no cell for a scale outside 2, 3,
    4, 10 or a model outside DNN, IPNN, DCNv2, FinalMLP (left empty)."""
    sources = ("ours", *paper.SCALING_DATASETS)
    scales = [f"{k}x" for k in config.scales]
    header = ["model", "method"] + [f"{column} {source}" for column in
                                    ([] if improvements else ["base"]) + scales
                                    for source in sources]
    rows = []
    for name, method, first in _scaling_rows(config):
        cells = []
        if not improvements:
            cells += _beside(records, table, name, paper.BASE, 1, False) if first else [
                ""] * len(sources)
        for k in config.scales:
            cells += _beside(records, table, name, method, k, improvements)
        rows.append([DISPLAY.get(name, name) if first else "", method, *cells])
    return report.markdown_table(header, rows)


def _beside(records: list[dict[str, Any]], table: int, name: str, method: str, k: int,
            improvements: bool) -> list[str]:
    """One scale's cells: ours, then the paper's on each of its data sets."""
    return [_ours(records, name, method, k, improvements),
            *(_theirs(table, dataset, name, method, k, improvements)
              for dataset in paper.SCALING_DATASETS)]


def _ours(records: list[dict[str, Any]], name: str, method: str, k: int,
          improvements: bool) -> str:
    found = _scaling_records(records, name, method, k)
    if not improvements:
        return _cell(found, "auc")
    base = _scaling_records(records, name, paper.BASE, 1)
    if not found or not base:
        return "n/a"
    return _percent(paper.improvement(_mean(found, "auc"), _mean(base, "auc")))


def _theirs(table: int, dataset: str, name: str, method: str, k: int, improvements: bool
            ) -> str:
    value = paper.scaling_auc(table, dataset, name, method, k)
    if not improvements or value is None:
        return _figure(value)
    base = paper.scaling_auc(table, dataset, name, paper.BASE, 1)
    return _percent(None if base is None else paper.improvement(value, base))


def _main_choice(records: list[dict[str, Any]], row: str) -> list[dict[str, Any]]:
    """Table 1's ``row``: the model alone, or the CETNet alpha whose runs have the best mean
    validation AUC of the fused prediction (the paper tunes alpha on validation)."""
    found = _select(records, table="main", row=row)
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in found:
        by_label.setdefault(r["method"], []).append(r)
    if not by_label:
        return []

    def valid_auc(label: str) -> float:
        values = [r["valid"][r["monitor"]]["auc"] for r in by_label[label]]
        return math.fsum(values) / len(values)

    return by_label[max(sorted(by_label), key=valid_auc)]


def _main_title(row: str) -> str:
    models = [DISPLAY.get(m, m) for m in row.split("+")]
    return models[0] if len(models) == 1 else f"CETNet ({' + '.join(models)})"


MAIN_METRICS = ("gauc_users", "gauc_impressions", "auc", "logloss")


def main_table(records: list[dict[str, Any]], config: CETNetExperimentConfig) -> str:
    """Table 1 layout: ours (the alpha picked on validation, every metric) beside Liu et al.'s
    gAUC, AUC and LogLoss on each of their three data sets."""
    header = ["method", "alpha", *(f"ours {METRIC_NAMES[m]}" for m in MAIN_METRICS),
              *(f"{dataset} {name}" for dataset in paper.ABLATION_DATASETS
                for name in ("gAUC", "AUC", "LogLoss"))]
    rows = []
    for row in config.main_rows:
        chosen = _main_choice(records, row)
        alpha = chosen[0]["method"].removeprefix("alpha ") if chosen and "+" in row else ""
        rows.append([_main_title(row), alpha, *(_cell(chosen, m) for m in MAIN_METRICS),
                     *(_figure(paper.main_figure(row, dataset, m), 4)
                       for dataset in paper.ABLATION_DATASETS
                       for m in paper.ABLATION_METRICS)])
    return report.markdown_table(header, rows)


def main_alpha_table(records: list[dict[str, Any]], config: CETNetExperimentConfig) -> str:
    """Validation AUC of each CETNet row at each alpha (mean over seeds): the tuning."""
    header = ["method", *(f"alpha {a:g}" for a in config.alphas)]
    rows = []
    for row in (r for r in config.main_rows if "+" in r):
        cells = []
        for alpha in config.alphas:
            runs = _select(records, table="main", row=row, method=f"alpha {alpha:g}")
            values = [r["valid"][r["monitor"]]["auc"] for r in runs]
            cells.append(f"{math.fsum(values) / len(values):.4f}" if values else "n/a")
        rows.append([_main_title(row), *cells])
    return report.markdown_table(header, rows)


def _pair_records(records: list[dict[str, Any]], pair: str, label: str
                  ) -> list[dict[str, Any]]:
    """A pair's variant, or ``model i alone`` (its i-th model trained by itself)."""
    if label.startswith("model ") and label.endswith(" alone"):
        models = _parse_pair(pair)
        position = int(label.split()[1]) - 1
        return _select(records, key=f"single/{models[position]}") if position < len(models) else []
    return _select(records, table="ablation", row=pair, method=label)


def _ablation_labels(config: CETNetExperimentConfig) -> list[str]:
    widest = max(len(_parse_pair(p)) for p in config.pairs)
    return [v.label for v in ABLATIONS] + [f"model {i + 1} alone" for i in range(widest)]


def ablation_table(records: list[dict[str, Any]], config: CETNetExperimentConfig) -> str:
    """Table 3 layout: a row per variant (and per model alone), every metric per pair."""
    header = ["variant"] + [f"{_pair_title(p)} {METRIC_NAMES[m]}" for p in config.pairs
                            for m in METRIC_NAMES]
    rows = [[label, *(_cell(_pair_records(records, pair, label), m)
                      for pair in config.pairs for m in METRIC_NAMES)]
            for label in _ablation_labels(config)]
    return report.markdown_table(header, rows)


def paper_ablation_table() -> str:
    """Liu et al., Table 3 (and the members alone, Table 1) under this project's labels."""
    header = ["variant"] + [f"{dataset} {name}" for dataset in paper.ABLATION_DATASETS
                            for name in ("gAUC", "AUC", "LogLoss")]
    rows = [[label, *(_figure(values[dataset][m], 4) for dataset in paper.ABLATION_DATASETS
                      for m in paper.ABLATION_METRICS)]
            for label, values in paper.TABLE3.items()]
    return report.markdown_table(header, rows)


def ablation_improvements(records: list[dict[str, Any]], config: CETNetExperimentConfig
                          ) -> str:
    """CETNet's AUC improvement over each row (the paper's measure, ``AUC_CETNet / AUC_row -
    1``), ours per pair beside the paper's per data set."""
    header = ["CETNet over", *(f"ours {_pair_title(p)}" for p in config.pairs),
              *paper.ABLATION_DATASETS]
    rows = []
    for label in _ablation_labels(config)[1:]:
        ours = [_ablation_improvement(records, pair, label) for pair in config.pairs]
        theirs = [_percent(_paper_improvement(label, dataset))
                  for dataset in paper.ABLATION_DATASETS]
        rows.append([label, *ours, *theirs])
    return report.markdown_table(header, rows)


def _ablation_improvement(records: list[dict[str, Any]], pair: str, label: str) -> str:
    full = _pair_records(records, pair, CETNET.label)
    other = _pair_records(records, pair, label)
    if not full or not other:
        return "n/a"
    return _percent(paper.improvement(_mean(full, "auc"), _mean(other, "auc")))


def _paper_improvement(label: str, dataset: str) -> float | None:
    full = paper.ablation_figure(CETNET.label, dataset, "auc")
    other = paper.ablation_figure(label, dataset, "auc")
    return None if full is None or other is None else paper.improvement(full, other)


def _pair_title(pair: str) -> str:
    return " + ".join(DISPLAY.get(m, m) for m in _parse_pair(pair))


INDEPENDENCE = (
    "Independent samples are the seeds. Each seed trains every configuration once from its own "
    "initialisation and batch order, so the runs of one configuration at different seeds are "
    "independent, and two configurations are compared by a paired t-test with the seed as the "
    "unit (n = seeds). The members of one CETNet group and its fused prediction come from one "
    "training run (shared batches, gradients through one loss): they are one sample, never "
    "N, and no test here uses them as separate samples."
)


def _comparisons(config: CETNetExperimentConfig) -> list[tuple[str, dict[str, Any],
                                                                dict[str, Any]]]:
    """``(title, after, before)`` selections: CETNet against every other ablation row, and each
    of our fusions against SE and ME at the same scale."""
    found = []
    if "main" in config.tables:
        for row in (r for r in config.main_rows if "+" in r):
            for member in dict.fromkeys(row.split("+")):
                found.append((f"{_main_title(row)} vs {_main_title(member)} alone",
                              {"main": row}, {"main": member}))
    if "ablation" in config.tables:
        for pair in config.pairs:
            for label in _ablation_labels(config)[1:]:
                found.append((f"{_pair_title(pair)}: CETNet vs {label}",
                              {"pair": pair, "label": CETNET.label},
                              {"pair": pair, "label": label}))
    if "scaling" in config.tables:
        for name in config.scaling_models:
            for k in config.scales:
                for ours in OURS_FUSION:
                    for baseline in ("SE", "ME"):
                        found.append((f"{DISPLAY.get(name, name)} {k}x: {ours} vs {baseline}",
                                      {"name": name, "method": ours, "k": k},
                                      {"name": name, "method": baseline, "k": k}))
    return found


def _records_of(records: list[dict[str, Any]], where: dict[str, Any]) -> list[dict[str, Any]]:
    if "main" in where:
        return _main_choice(records, where["main"])
    if "pair" in where:
        return _pair_records(records, where["pair"], where["label"])
    return _scaling_records(records, where["name"], where["method"], where["k"])


def significance(records: list[dict[str, Any]], config: CETNetExperimentConfig,
                 metric: str = "auc") -> str:
    """The independence statement and, with two or more seeds, a paired t-test per comparison
    (:func:`mutualctr.statistics.paired_t_test_by_unit`, the
    seed as the unit)."""
    if config.seeds < 2:
        return INDEPENDENCE + " With one seed there is nothing to test."
    rows = []
    for title, after, before in _comparisons(config):
        a = _by_seed(_records_of(records, after), metric)
        b = _by_seed(_records_of(records, before), metric)
        seeds = sorted(set(a) & set(b))
        if len(seeds) < 2:
            rows.append([title, len(seeds), "n/a", "n/a", "n/a"])
            continue
        test = statistics.paired_t_test_by_unit(a, b)
        diff = math.fsum(a[s] - b[s] for s in seeds) / len(seeds)
        rows.append([title, len(seeds), f"{diff:+.4f}", f"{test.statistic:.2f}",
                     f"{test.p_value:.3g}"])
    header = ["comparison", "seeds", f"mean {METRIC_NAMES[metric]} difference", "t", "p"]
    return INDEPENDENCE + "\n\n" + report.markdown_table(header, rows)


def write_report(out: Path, config: CETNetExperimentConfig) -> str:
    """``OUT/report.md`` and ``OUT/results.csv`` from the run folders; returns the markdown."""
    records = load_records(out)
    scaled = "" if set(config.tables) == {"main"} else (  # the main table sets its own
        f"base embedding size {config.embedding_dim}; alpha {config.alpha}; ")
    parts = ["# CETNet experiment", "",
             f"Data: `{config.data}`; {scaled}{config.seeds} seed(s) from {config.train.seed}; "
             "test-split metrics of the best-validation weights (CETNet: the fused "
             "prediction). gAUC (impressions): per-user AUC weighted by the user's rows (DIN, "
             "FuxiCTR); gAUC (users): the plain mean over users (as Liu et al. describe it). "
             "NE: logloss over the entropy of the training split's positive rate (He et al. "
             "2014).", ""]
    if "scaling" in config.tables:
        parts += _scaling_section(records, config)
    if "ablation" in config.tables:
        parts += ["## Ablation (Table 3 layout)", "", ablation_table(records, config), "",
                  "### Liu et al., Table 3 (InterFormer + DHEN; members alone: Table 1)", "",
                  paper_ablation_table(), "",
                  "### CETNet's AUC improvement over each row (AUC_CETNet / AUC_row - 1)", "",
                  "Ours per pair beside Liu et al., Table 3 / Table 1 per data set.", "",
                  ablation_improvements(records, config), ""]
    if "main" in config.tables:
        parts += [f"## Main comparison (Table 1 layout): baselines at embedding "
                  f"{config.main_embedding_dim}, CETNet members at {config.member_embedding_dim}",
                  "", "Ours on this data beside Liu et al., Table 1 (their data sets). CETNet "
                  "rows: the alpha with the best mean validation AUC.", "",
                  main_table(records, config), "", "### Validation AUC per alpha", "",
                  main_alpha_table(records, config), ""]
    parts += ["## Significance", "", significance(records, config), ""]
    text = "\n".join(parts)
    files.write_text(out / "report.md", text)
    report.write_csv(out / "results.csv", [
        {k: r[k] for k in ("table", "row", "method", "scale", "seed", "parameters")}
        | {"prediction": name} | values
        for r in records for name, values in r["test"].items()
    ])
    return text


def _scaling_section(records: list[dict[str, Any]], config: CETNetExperimentConfig
                     ) -> list[str]:
    table = paper.scaling_table_for(config.train.epochs)
    source = f"Liu et al., Table {table}" + (" (one epoch)" if table == 5 else "")
    parts = [f"## Scaling (Table 4 layout): AUC beside {source}", "",
             f"Criteo and Avazu columns: {source}, base embedding size "
             f"{paper.BASE_EMBEDDING_DIM}.", "",
             scaling_beside_paper(records, config, table, improvements=False), "",
             f"### Improvement over the base model (AUC / AUC_base - 1), ours beside {source}",
             "", scaling_beside_paper(records, config, table, improvements=True), ""]
    for metric in ("gauc_impressions", "gauc_users", "logloss", "normalized_entropy"):
        parts += [f"## Scaling (Table 4 layout): {METRIC_NAMES[metric]}", "",
                  scaling_table(records, config, metric), ""]
    return parts


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
    store = EncodedStore.open(config.data)
    groups = group_ids(store, config.group_field)
    background_rate = training_positive_rate(store)
    jobs = plan(config)
    for i, job in enumerate(jobs, start=1):
        for seed in range(config.train.seed, config.train.seed + config.seeds):
            log(f"[{i}/{len(jobs)}] {job.key} seed {seed}")
            record = run_job(job, config, seed, out, groups, background_rate, overwrite)
            log("    " + " ".join(f"{m} {_score(record, m):.5f}" for m in METRIC_NAMES))
    return write_report(out, config)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cetnet",
        help="CETNet vs SE/ME scaling (Table 4), its ablations (Table 3) and the sequence "
        "models' comparison (Table 1: --tables main)",
        description="Run the CETNet experiment on an encoded store and write OUT/report.md.",
    )
    add_experiment_arguments(parser, keys="data, tables, scaling_models, scales, pairs, "
                             "main_rows, main_embedding_dim, member_embedding_dim, alphas, "
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
