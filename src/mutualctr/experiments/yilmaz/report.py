"""The report of ``experiment yilmaz``, built from the runs' records only: report.md (the paper's
Tables 1-4 with its figures beside ours, and paired tests over groups), results.csv (one row
per trained member) and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutualctr import files
from mutualctr.experiments.curves import Curve, curves_table, learning_curves, plot_curves
from mutualctr.experiments.engine import Record, load_records
from mutualctr.experiments.report import (
    format_percent,
    markdown_table,
    plot_grouped_bars,
    plot_lines,
    write_csv,
)
from mutualctr.experiments.yilmaz import paper
from mutualctr.experiments.yilmaz.plan import YilmazConfig, YilmazPlan, seed_of
from mutualctr.metrics import relaimp
from mutualctr.runfolders.folder import METRICS_FILE, read_model_spec
from mutualctr.statistics import format_mean_std, mean_std, paired_effect

DIGITS = 5  # AUC digits, as the paper prints them

# Table 1's rows: (run-folder kind, label, the paper's row or None, research question)
TABLE1_ROWS = (
    ("scratch", "mutual from scratch", paper.SCRATCH, 1),
    ("alone", "finetuned alone (control)", None, 2),
    ("finetune", "mutual with pretraining", paper.PRETRAINED, 2),
)
# the paired tests over groups: (label, after, before); "independent" = the pretrained runs
COMPARISONS = (
    ("RQ1: mutual from scratch - independent", "scratch", "independent"),
    ("RQ2: mutual with pretraining - pretrained", "finetune", "independent"),
    ("RQ2 control: finetuned alone - pretrained", "alone", "independent"),
    ("RQ2: mutual with pretraining - finetuned alone", "finetune", "alone"),
)


@dataclass
class GroupResult:
    """Test AUCs of a finished group run, members in group order."""

    root: Path
    names: list[str]
    test: list[float]
    start: list[float | None]  # the starting runs' test AUC (finetuning), else None

    @classmethod
    def of(cls, record: Record) -> GroupResult:
        """The group run of ``record`` (its members' names and order: the run's model.json)."""
        metrics = record.metrics
        names = [m["name"] for m in read_model_spec(record.run)["members"]]
        init = metrics.get("init", {})
        return cls(
            root=record.run, names=names,
            test=[float(metrics["test"][n]["auc"]) for n in names],
            start=[init[n]["test"] if n in init else None for n in names],
        )

    def auc_of(self, name: str) -> float | None:
        return self.test[self.names.index(name)] if name in self.names else None

    def start_of(self, name: str) -> float | None:
        return self.start[self.names.index(name)] if name in self.names else None


def _only_auc(record: Record, split: str = "test") -> float:
    """The AUC of a run with a single prediction (an independent run)."""
    (values,) = record.metrics[split].values()
    return float(values["auc"])


def _key(labels: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(labels.items()))


def run_relaimp(after: Sequence[float], before: Sequence[float]) -> list[float]:
    """RelaImp (eq. 5) of run k after training against run k before it, for every k.

    The paper states ranges of RelaImp (section 3.3) without saying what the baseline is; per
    run against the run it started from reproduces its Criteo range (+0.25..+0.37%) from
    Table 1 exactly, so ours and the paper's columns are both computed this way."""
    return [relaimp(a, b) for a, b in zip(after, before, strict=True)]


def format_relaimp(values: Sequence[float]) -> str:
    """Mean and range of per-run RelaImp: ``+0.46% (+0.32..+0.62%)``."""
    if len(values) == 1:
        return format_percent(values[0])
    low, high = (f"{100 * v:+.2f}" for v in (min(values), max(values)))
    return f"{format_percent(mean_std(values)[0])} ({low}..{high}%)"


def _aucs(values: Sequence[float]) -> str:
    return " ".join(map(_cell, values))


def _p(p: float) -> str:
    return "—" if math.isnan(p) else f"{p:.3f}"


def _paper_table1(model: str, row: str | None) -> list[str]:
    """The paper's runs and RelaImp (against its independent runs) per dataset, Table 1."""
    cells = []
    for dataset in paper.DATASETS:
        rows = paper.TABLE1[dataset].get(model)
        if rows is None or row is None:
            cells += ["—", ""]
            continue
        gain = "" if row == paper.INDEPENDENT else format_relaimp(
            run_relaimp(rows[row], rows[paper.INDEPENDENT]))
        cells += [_aucs(rows[row]), gain]
    return cells


class YilmazReport:
    """Collects the experiment's results from its records and renders them."""

    def __init__(self, config: YilmazConfig, out: Path, records: Sequence[Record]) -> None:
        self.s, self.out = config, out
        self.exp = YilmazPlan(config, out)
        self.records = {_key(r.labels): r for r in records}
        groups = range(1, config.groups + 1)
        self.pretrained = {
            m: [[self.independent_auc(m, k) for k in self.exp.group_seeds(g)] for g in groups]
            for m in config.models
        }
        asked = {kind for kind, _, _, q in TABLE1_ROWS if q in config.questions}
        self.groups = {
            kind: {m: [self.group(kind, model=m, group=g) if kind in asked else None
                       for g in groups] for m in config.models}
            for kind, _, _, _ in TABLE1_ROWS
        }
        self.mixed = self.group("mixed")
        sizes = range(2, config.max_group + 1) if 4 in config.questions else range(0)
        self.sizes = {m: {n: self.size(m, n) for n in sizes} for m in config.models}

    def record(self, **labels: Any) -> Record | None:
        """The record with exactly these labels, None when that run has not finished."""
        return self.records.get(_key(labels))

    def independent_auc(self, model: str, k: int, split: str = "test") -> float:
        """The AUC of independent run ``k`` of ``model``."""
        record = self.record(kind="independent", model=model, run=k)
        if record is None:
            raise FileNotFoundError(f"{self.exp.independent_dir(model, k)}: no record; run "
                                    "the experiment first")
        return _only_auc(record, split)

    def group(self, kind: str, **labels: Any) -> GroupResult | None:
        record = self.record(kind=kind, **labels)
        return None if record is None else GroupResult.of(record)

    def size(self, model: str, n: int) -> GroupResult | None:
        """RQ4's group of ``n`` (that of ``seeds`` is RQ2's first group)."""
        if n == self.s.seeds:
            return self.group("finetune", model=model, group=1)
        return self.group("size", model=model, n=n)

    def aucs(self, kind: str, model: str) -> list[list[float] | None]:
        """Per group, the members' test AUCs of ``kind`` (``independent``: the pretrained runs)."""
        if kind == "independent":
            return list(self.pretrained[model])
        return [None if g is None else g.test for g in self.groups[kind][model]]

    # -- Table 1 ---------------------------------------------------------------------------

    def _table1_row(self, model: str, label: str, g: int, aucs: list[float] | None,
                    paper_row: str | None) -> list[str]:
        """Group ``g``'s row; ``aucs`` None: the pretrained runs themselves."""
        base = self.pretrained[model][g - 1]
        gain = "" if aucs is None else format_relaimp(run_relaimp(aucs, base))
        aucs = base if aucs is None else aucs
        return [model, label, str(g), *map(_cell, aucs), format_mean_std(aucs, DIGITS), gain,
                *_paper_table1(model, paper_row)]

    def table1(self) -> str:
        """RQ1 and RQ2 in the layout of the paper's Table 1, its figures beside ours."""
        rows = []
        for m in self.s.models:
            for g in range(1, self.s.groups + 1):
                rows.append(self._table1_row(m, "independent runs", g, None, paper.INDEPENDENT))
                for kind, label, paper_row, _ in TABLE1_ROWS:
                    result = self.groups[kind][m][g - 1]
                    if result is not None:
                        rows.append(self._table1_row(m, label, g, result.test, paper_row))
        runs = [f"Run {k}" for k in range(1, self.s.seeds + 1)]
        header = ["Model", "Training", "Group", *runs, "Mean ± Std", "RelaImp (per run)",
                  "Avazu (paper), runs 1-4", "RelaImp", "Criteo (paper), runs 1-4", "RelaImp"]
        return markdown_table(header, rows, "lll" + "r" * (len(header) - 3))

    def table_tests(self) -> str:
        """Paired t-tests over groups: one value per group, the mean of its members."""
        rows = []
        for m in self.s.models:
            for label, after, before in COMPARISONS:
                a, b = self.aucs(after, m), self.aucs(before, m)
                if any(x is None for x in (*a, *b)):
                    continue
                e = paired_effect([mean_std(x)[0] for x in a], [mean_std(x)[0] for x in b])
                rows.append([m, label, str(e.n), f"{e.mean:+.5f}", f"{e.std:.5f}",
                             _p(e.p_value)])
        return markdown_table(["Model", "Comparison (group means)", "Groups", "Mean difference",
                               "Std", "p (paired t)"], rows, "ll" + "r" * 4)

    # -- Table 2 ---------------------------------------------------------------------------

    def _ours_table2(self) -> list[list[str]]:
        best = self.exp.best_runs()
        starts = [self.independent_auc(m, seed_of(r))
                  for m, r in zip(self.s.models, best, strict=True)]
        same = [g.auc_of(f"{m}_{seed_of(r)}")
                if (g := self.group("finetune", model=m, group=1)) else None
                for m, r in zip(self.s.models, best, strict=True)]
        mixed = [self.mixed.auc_of(m) if self.mixed else None for m in self.s.models]
        label = f"ours (`{Path(self.s.data).name}`)"
        return [
            [label, "Pretrained", *(f"{a:.5f} (seed {seed_of(r)})"
                                    for a, r in zip(starts, best, strict=True))],
            [label, "DML of same models", *map(_with_gain, same, starts)],
            [label, "DML of diff. models", *map(_with_gain, mixed, starts)],
        ]

    def _paper_table2(self) -> list[list[str]]:
        rows = []
        for dataset in paper.DATASETS:
            t = paper.TABLE2[dataset]
            label = f"{dataset.capitalize()} (paper)"
            start = [t[paper.BEST].get(m) for m in self.s.models]
            rows.append([label, "Pretrained", *("—" if a is None else _cell(a) for a in start)])
            for row, name in ((paper.SAME, "DML of same models"),
                              (paper.MIXED, "DML of diff. models")):
                after = [t[row].get(m) for m in self.s.models]
                rows.append([label, name, *map(_with_gain, after, start)])
        return rows

    def table2(self) -> str:
        """RQ3 in the layout of the paper's Table 2 (rows per data set, columns per model)."""
        return markdown_table(["Dataset", "Training", *self.s.models],
                              [*self._ours_table2(), *self._paper_table2()],
                              "ll" + "r" * len(self.s.models))

    # -- Tables 3-4 ------------------------------------------------------------------------

    def size_points(self, model: str) -> list[tuple[int, GroupResult]]:
        return [(n, g) for n, g in self.sizes[model].items() if g is not None]

    def table_sizes(self, model: str) -> str:
        """RQ4 for one model in the layout of the paper's Tables 3-4 (N from the largest)."""
        seeds = range(1, max(self.s.seeds, self.s.max_group) + 1)
        table = paper.SIZE_TABLES.get(model)
        rows = []
        for n, g in sorted(self.size_points(model), reverse=True):
            names = [f"{model}_{k}" for k in seeds]
            before = [g.start_of(name) for name in names]
            after = [g.auc_of(name) for name in names]
            start = [s for s in g.start if s is not None]
            cells = [str(n), *map(_cell, before), *map(_cell, after),
                     format_mean_std(g.test, DIGITS),
                     format_relaimp(run_relaimp(g.test, start))]
            if table is not None and n in table.pretrained:
                cells += [_aucs(table.pretrained[n]), _aucs(table.finetuned[n]),
                          format_relaimp(run_relaimp(table.finetuned[n], table.pretrained[n]))]
            elif table is not None:
                cells += ["—", "—", ""]
            rows.append(cells)
        header = ["N", *(f"Pretrained {k}" for k in seeds), *(f"Finetuned {k}" for k in seeds),
                  "Mean ± Std", "RelaImp (per run)"]
        if table is not None:
            where = f"{table.dataset.capitalize()} (paper)"
            header += [f"{where} pretrained", f"{where} finetuned", "RelaImp"]
        return markdown_table(header, rows)

    def tables_sizes(self) -> list[str]:
        parts = []
        for m in self.s.models:
            if not self.size_points(m):
                continue
            table = paper.SIZE_TABLES.get(m)
            source = (f"paper: {paper.cite(table.number)}, {table.dataset.capitalize()}"
                      if table is not None else "not in the paper")
            parts += [f"### {m} ({source})", "", self.table_sizes(m), ""]
        return parts

    # -- summary, CSV, plots ---------------------------------------------------------------

    def findings(self) -> list[str]:
        """One computed line per answered comparison, with the paper's stated range."""
        lines = []
        for kind, label, _, _ in TABLE1_ROWS:
            gains = {}
            for m in self.s.models:
                pairs = zip(self.aucs(kind, m), self.pretrained[m], strict=True)
                done = [run_relaimp(a, b) for a, b in pairs if a is not None]
                if done:
                    gains[m] = [v for runs in done for v in runs]
            if gains:
                shown = ", ".join(f"{m} {format_relaimp(v)}" for m, v in gains.items())
                lines.append(f"- {label} against the independent runs, RelaImp per run: "
                             f"{shown}.")
        if 2 in self.s.questions:
            stated = ", ".join(f"{d.capitalize()} {100 * lo:+.2f}..{100 * hi:+.2f}%"
                               for d, (lo, hi) in paper.STATED_RELAIMP.items())
            lines.append(f"- The paper (section 3.3) states {stated} for mutual learning with "
                         "pretraining; its Table 1 per run gives the RelaImp columns above.")
        return lines

    def csv_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for m in self.s.models:
            for k, r in enumerate(self.exp.independent_runs(m, self.s.pretrained_runs), 1):
                rows.append({"question": "pretrain", "group": str(r), "model": m, "member": m,
                             "start_test_auc": "", "test_auc": self.independent_auc(m, k)})
        for question, kind in (("RQ1", "scratch"), ("RQ2", "finetune"), ("RQ2-control", "alone")):
            for by_group in self.groups[kind].values():
                rows += [r for g in by_group if g is not None for r in _member_rows(question, g)]
        if self.mixed is not None:
            rows += _member_rows("RQ3", self.mixed)
        for m in self.s.models:
            for _, g in self.size_points(m):
                rows += _member_rows("RQ4", g)
        return rows

    def curves(self) -> list[Curve]:
        """The pretrained runs' validation AUC per epoch: which epoch each run kept."""
        return [c for m in self.s.models
                for k, r in enumerate(self.exp.independent_runs(m, self.s.pretrained_runs), 1)
                if (r / METRICS_FILE).is_file()
                for c in learning_curves(r, f"{m} run {k}")]

    def plot(self) -> list[Path]:
        paths = []
        curves = self.curves()
        if curves:
            path = self.out / "pretraining_curves.png"
            plot_curves(path, curves, "Pretraining: validation AUC per epoch")
            paths.append(path)
        models = list(self.s.models)
        bars = {"independent": [mean_std(_flat(self.aucs("independent", m))) for m in models]}
        for label, kind in (("mutual, scratch", "scratch"), ("alone, finetuned", "alone"),
                            ("mutual, finetuned", "finetune")):
            if all(None not in self.aucs(kind, m) for m in models):
                bars[label] = [mean_std(_flat(self.aucs(kind, m))) for m in models]
        path = self.out / "auc_per_model.png"
        plot_grouped_bars(path, models, bars, ylabel="test AUC",
                          title="Test AUC per model (mean ± std over runs)")
        paths.append(path)
        series = {m: [mean_std(g.test) for _, g in self.size_points(m)] for m in models}
        series = {m: v for m, v in series.items() if v}
        if series:
            ns = [n for n, _ in self.size_points(next(iter(series)))]
            path = self.out / "auc_vs_group_size.png"
            plot_lines(path, ns, series, xlabel="models finetuned together (N)",
                       ylabel="members' test AUC", title="Mutual finetuning: group size")
            paths.append(path)
        return paths

    def intro(self) -> list[str]:
        s = self.s
        t, f = s.train, s.finetune
        return [
            "# Mutual learning for finetuning CTR models (Yilmaz & Aldemir 2024): results",
            "",
            f"Data: `{s.data}`. Models: {', '.join(s.models)}; {s.groups} group(s) of "
            f"{s.seeds} independent runs per model. Pretraining (and RQ1's scratch groups): "
            f"up to {t.epochs} epoch(s), early stopping with patience "
            f"{t.early_stopping.patience} on validation AUC, best epoch restored, batch "
            f"{t.batch_size}, lr {t.lr}, schedule {_schedule(t)}. Finetuning: {f.epochs} "
            f"epoch(s) at lr {f.lr}, schedule {_schedule(f)}. All AUCs are on the test split.",
            "",
            "RelaImp = (AUC - 0.5) / (AUC_base - 0.5) - 1 (the paper's eq. 5), per run: run k "
            "after training against independent run k (the run it started from, or was "
            "initialised like); cells give the mean and the range over runs. The paper's "
            f"columns are its own figures ({paper.CITATION}, Tables 1-4) with RelaImp computed "
            "from them the same way.",
            "",
        ]

    def tests_text(self) -> list[str]:
        return [
            "Independent samples: the pretrained runs (each trained alone from its own seed) "
            "and the groups (each built from its own, disjoint set of pretrained runs). The "
            "members of one mutual group learn from each other, so they are not independent "
            "samples: each test takes one value per group, the mean test AUC of its members, "
            "and pairs group g's value after one training with group g's value after another "
            "(the same pretrained runs). Mean difference: the effect in AUC; std: of the "
            f"per-group differences. Groups per model: {self.s.groups}"
            + (" (no p-value with one; set `groups` >= 2)." if self.s.groups < 2 else "."),
            "",
        ]

    def markdown(self, plots: list[Path]) -> str:
        parts = self.intro()
        q = self.s.questions
        curves = self.curves()
        if curves:
            parts += ["## Pretraining: validation AUC per epoch", "",
                      "The independent runs, each restored to its best epoch (the paper's "
                      "models are measured at that peak, which on Criteo and Avazu is the first "
                      "or second epoch).", "", curves_table(curves), ""]
        if 1 in q or 2 in q:
            parts += ["## Table 1: RQ1 and RQ2, independent training vs mutual learning", "",
                      f"Paper columns: {paper.cite(1)}.", "", self.table1(), "",
                      "### Paired tests over groups", "", *self.tests_text(),
                      self.table_tests(), ""]
        if 3 in q:
            parts += ["## Table 2: RQ3, same-model vs different-model groups", "",
                      f"Paper rows: {paper.cite(2)}. Cells: the best pretrained run's test AUC "
                      "and, after finetuning, the same run's AUC with its RelaImp against the "
                      "pretrained AUC.", "", self.table2(), ""]
        if 4 in q:
            parts += ["## Tables 3-4: RQ4, number of co-trained models", "",
                      f"The paper ran RQ4 for FiBiNET on Avazu ({paper.cite(3)}) and DCN on "
                      f"Criteo ({paper.cite(4)}). Ours: N = {self.s.seeds} is RQ2's first "
                      "group; smaller groups drop the run with the worst validation AUC one at a "
                      "time; larger ones add pretrained runs.", "", *self.tables_sizes()]
        findings = self.findings()
        if findings:
            parts += ["## Summary", "", *findings, ""]
        parts += [f"![{p.stem}]({p.name})" for p in plots]
        return "\n".join(parts) + "\n"


def _schedule(t: Any) -> str:
    s = t.schedule
    if s.name == "exponential":
        return f"exponential to {s.decay_to:g}x over {s.decay_epochs:g} epochs"
    return s.name


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.{DIGITS}f}"


def _with_gain(auc: float | None, start: float | None) -> str:
    if auc is None or start is None:
        return "—"
    return f"{auc:.{DIGITS}f} ({format_percent(relaimp(auc, start))})"


def _flat(groups: list[list[float] | None]) -> list[float]:
    return [v for g in groups if g is not None for v in g]


def _member_rows(question: str, g: GroupResult) -> list[dict[str, Any]]:
    spec = read_model_spec(g.root)
    return [
        {"question": question, "group": str(g.root), "model": m["model"], "member": m["name"],
         "start_test_auc": "" if start is None else start, "test_auc": auc}
        for m, auc, start in zip(spec["members"], g.test, g.start, strict=True)
    ]


def write_report(config: YilmazConfig, out: Path,
                 records: Sequence[Record] | None = None) -> str:
    """Write report.md, results.csv and the plots into ``out`` from ``records`` (default: every
    record under ``out``); return the markdown."""
    report = YilmazReport(config, out, load_records(out) if records is None else records)
    write_csv(out / "results.csv", report.csv_rows())
    text = report.markdown(report.plot())
    files.write_text(out / "report.md", text)
    return text
