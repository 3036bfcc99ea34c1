"""The report of ``mutualctr experiment cetnet``, built from the runs' records only: Liu et
al.'s Tables 1, 3 and 4 (or 5) in the paper's layout, its own figures (:mod:`.paper`) beside
ours with its improvement measure, and paired tests over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mutualctr import files, statistics
from mutualctr.experiments import report
from mutualctr.experiments.cetnet import paper
from mutualctr.experiments.cetnet.plan import (
    OURS_FUSION,
    RUNS,
    SCALING_METHODS,
    CETNetExperimentConfig,
    _parse_pair,
)
from mutualctr.experiments.engine import Record, load_records, select
from mutualctr.methods.cetnet import ABLATIONS, CETNET

DISPLAY = {"dnn": "DNN", "pnn": "IPNN", "dcnv2": "DCNv2", "finalmlp": "FinalMLP",
           "xdeepfm": "xDeepFM", "dhen": "DHEN", "wukong": "Wukong", "din": "DIN",
           "dien": "DIEN", "interformer": "InterFormer"}
METRIC_NAMES = {"auc": "AUC", "gauc_impressions": "gAUC (impressions)",
                "gauc_users": "gAUC (users)", "logloss": "logloss", "normalized_entropy": "NE"}


def _score(record: Record, metric: str, split: str = "test") -> float:
    """The monitored prediction's ``metric`` (nan when the run did not compute it)."""
    metrics = record.metrics
    return metrics[split][metrics["monitor"]].get(metric, math.nan)


def _by_seed(records: list[Record], metric: str) -> dict[int, float]:
    """One value per seed: a configuration's independent samples (see :func:`significance`)."""
    return {r.labels["seed"]: _score(r, metric) for r in records}


def _mean(records: list[Record], metric: str) -> float:
    values = [_score(r, metric) for r in records]
    return math.fsum(values) / len(values) if values else math.nan


def _cell(records: list[Record], metric: str) -> str:
    values = [_score(r, metric) for r in records]
    if not values or any(math.isnan(v) for v in values):
        return "n/a"
    return statistics.format_mean_std(values) if len(values) > 1 else f"{values[0]:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else report.format_percent(value)


def _figure(value: float | None, digits: int = 5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _scaling_records(records: list[Record], name: str, method: str, k: int
                     ) -> list[Record]:
    if method == paper.BASE:
        return select(records, key=f"single/{name}")
    return select(records, table="scaling", row=name, method=method, scale=k)


def _scaling_rows(config: CETNetExperimentConfig) -> list[tuple[str, str, bool]]:
    """``(model, method, first row of the model)`` in the paper's Table 4 order."""
    return [(name, method, i == 0) for name in config.scaling_models
            for i, method in enumerate(SCALING_METHODS)]


def scaling_table(
    records: list[Record], config: CETNetExperimentConfig, metric: str
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
    records: list[Record], config: CETNetExperimentConfig, table: int,
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


def _beside(records: list[Record], table: int, name: str, method: str, k: int,
            improvements: bool) -> list[str]:
    """One scale's cells: ours, then the paper's on each of its data sets."""
    return [_ours(records, name, method, k, improvements),
            *(_theirs(table, dataset, name, method, k, improvements)
              for dataset in paper.SCALING_DATASETS)]


def _ours(records: list[Record], name: str, method: str, k: int,
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


def _main_choice(records: list[Record], row: str) -> list[Record]:
    """Table 1's ``row``: the model alone, or the CETNet alpha whose runs have the best mean
    validation AUC of the fused prediction (the paper tunes alpha on validation)."""
    found = select(records, table="main", row=row)
    by_label: dict[str, list[Record]] = {}
    for r in found:
        by_label.setdefault(r.labels["method"], []).append(r)
    if not by_label:
        return []

    def valid_auc(label: str) -> float:
        values = [_score(r, "auc", "valid") for r in by_label[label]]
        return math.fsum(values) / len(values)

    return by_label[max(sorted(by_label), key=valid_auc)]


def _main_title(row: str) -> str:
    models = [DISPLAY.get(m, m) for m in row.split("+")]
    return models[0] if len(models) == 1 else f"CETNet ({' + '.join(models)})"


MAIN_METRICS = ("gauc_users", "gauc_impressions", "auc", "logloss")


def main_table(records: list[Record], config: CETNetExperimentConfig) -> str:
    """Table 1 layout: ours (the alpha picked on validation, every metric) beside Liu et al.'s
    gAUC, AUC and LogLoss on each of their three data sets."""
    header = ["method", "alpha", *(f"ours {METRIC_NAMES[m]}" for m in MAIN_METRICS),
              *(f"{dataset} {name}" for dataset in paper.ABLATION_DATASETS
                for name in ("gAUC", "AUC", "LogLoss"))]
    rows = []
    for row in config.main_rows:
        chosen = _main_choice(records, row)
        alpha = chosen[0].labels["method"].removeprefix("alpha ") if chosen and "+" in row else ""
        rows.append([_main_title(row), alpha, *(_cell(chosen, m) for m in MAIN_METRICS),
                     *(_figure(paper.main_figure(row, dataset, m), 4)
                       for dataset in paper.ABLATION_DATASETS
                       for m in paper.ABLATION_METRICS)])
    return report.markdown_table(header, rows)


def main_alpha_table(records: list[Record], config: CETNetExperimentConfig) -> str:
    """Validation AUC of each CETNet row at each alpha (mean over seeds): the tuning."""
    header = ["method", *(f"alpha {a:g}" for a in config.alphas)]
    rows = []
    for row in (r for r in config.main_rows if "+" in r):
        cells = []
        for alpha in config.alphas:
            runs = select(records, table="main", row=row, method=f"alpha {alpha:g}")
            values = [_score(r, "auc", "valid") for r in runs]
            cells.append(f"{math.fsum(values) / len(values):.4f}" if values else "n/a")
        rows.append([_main_title(row), *cells])
    return report.markdown_table(header, rows)


def _pair_records(records: list[Record], pair: str, label: str
                  ) -> list[Record]:
    """A pair's variant, or ``model i alone`` (its i-th model trained by itself)."""
    if label.startswith("model ") and label.endswith(" alone"):
        models = _parse_pair(pair)
        position = int(label.split()[1]) - 1
        return select(records, key=f"single/{models[position]}") if position < len(models) else []
    return select(records, table="ablation", row=pair, method=label)


def _ablation_labels(config: CETNetExperimentConfig) -> list[str]:
    widest = max(len(_parse_pair(p)) for p in config.pairs)
    return [v.label for v in ABLATIONS] + [f"model {i + 1} alone" for i in range(widest)]


def ablation_table(records: list[Record], config: CETNetExperimentConfig) -> str:
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


def ablation_improvements(records: list[Record], config: CETNetExperimentConfig
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


def _ablation_improvement(records: list[Record], pair: str, label: str) -> str:
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


def _records_of(records: list[Record], where: dict[str, Any]) -> list[Record]:
    if "main" in where:
        return _main_choice(records, where["main"])
    if "pair" in where:
        return _pair_records(records, where["pair"], where["label"])
    return _scaling_records(records, where["name"], where["method"], where["k"])


def significance(records: list[Record], config: CETNetExperimentConfig,
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


def write_report(config: CETNetExperimentConfig, out: Path,
                 records: Sequence[Record] | None = None) -> str:
    """``OUT/report.md`` and ``OUT/results.csv`` from ``records`` (default: every record under
    ``OUT/runs``); returns the markdown."""
    records = load_records(out / RUNS) if records is None else list(records)
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
        {k: r.labels[k] for k in ("table", "row", "method", "scale", "seed")}
        | {"parameters": r.metrics["parameters"], "prediction": name} | values
        for r in records for name, values in r.metrics["test"].items()
    ])
    return text


def _scaling_section(records: list[Record], config: CETNetExperimentConfig
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
