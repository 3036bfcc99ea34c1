"""The report of ``experiment yilmaz``, built from its run folders only: report.md (tables in
the layout of the paper's Tables 1-4: test AUC per run, mean ± std, RelaImp, a paired t-test
over seeds), results.csv (one row per trained member) and PNG plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutualctr import files
from mutualctr.experiments.report import (
    format_mean_std,
    format_percent,
    markdown_table,
    mean_std,
    paired_t_test,
    plot_grouped_bars,
    plot_lines,
    write_csv,
)
from mutualctr.experiments.yilmaz_runs import YilmazConfig, YilmazExperiment
from mutualctr.methods.members import member_auc
from mutualctr.metrics import relaimp
from mutualctr.training.objectives.base import ENSEMBLE
from mutualctr.training.runfolder import METRICS_FILE, read_metrics, read_model_spec


@dataclass
class GroupResult:
    """Test AUCs of a finished group run, members in group order."""

    root: Path
    names: list[str]
    test: list[float]
    ensemble: float | None
    start: list[float | None]  # the starting runs' test AUC (finetuning), else None

    @classmethod
    def load(cls, root: Path) -> GroupResult:
        metrics = read_metrics(root)
        names = [m["name"] for m in read_model_spec(root)["members"]]
        test = metrics["test"]
        init = metrics.get("init", {})
        return cls(
            root=root, names=names,
            test=[float(test[n]["auc"]) for n in names],
            ensemble=float(test[ENSEMBLE]["auc"]) if ENSEMBLE in test else None,
            start=[init[n]["test"] if n in init else None for n in names],
        )

    def auc_of(self, name: str) -> float:
        return self.test[self.names.index(name)]


def _load(root: Path) -> GroupResult | None:
    return GroupResult.load(root) if (root / METRICS_FILE).is_file() else None


def _p(after: list[float], before: list[float]) -> str:
    p = paired_t_test(after, before).p_value
    return "—" if p != p else f"{p:.3f}"  # nan: identical pairs


def _row(model: str, label: str, aucs: list[float], base: list[float] | None,
         ensemble: float | None) -> list[str]:
    mean = mean_std(aucs)[0]
    cells = [model, label, *(f"{a:.4f}" for a in aucs), format_mean_std(aucs)]
    if base is None:
        return [*cells, "", "", "—" if ensemble is None else f"{ensemble:.4f}"]
    return [*cells, format_percent(relaimp(mean, mean_std(base)[0])), _p(aucs, base),
            "—" if ensemble is None else f"{ensemble:.4f}"]


class YilmazReport:
    """Collects the experiment's results and renders them."""

    def __init__(self, config: YilmazConfig, out: Path) -> None:
        self.s, self.out = config, out
        self.exp = YilmazExperiment(config, out)
        self.independent = {
            m: [member_auc(r)["test"] for r in self.exp.independent_runs(m)]
            for m in config.models
        }
        self.scratch = {m: _load(out / "scratch" / m) for m in config.models}
        self.finetune = {m: _load(out / "finetune" / m) for m in config.models}
        self.alone = {m: _load(out / "alone" / m) for m in config.models}
        self.mixed = _load(out / "mixed")
        self.sizes = {
            m: {n: _load(out / "size" / m / f"n{n}") for n in range(2, config.max_group + 1)}
            for m in config.models
        }

    def _header(self, extra: list[str]) -> list[str]:
        runs = [f"Run {k}" for k in range(1, self.s.seeds + 1)]
        return ["Model", "Training", *runs, "Mean ± Std", *extra]

    def table_rq1(self) -> str:
        rows = []
        for m in self.s.models:
            base = self.independent[m]
            rows.append(_row(m, "independent", base, None, None))
            if (g := self.scratch[m]) is not None:
                rows.append(_row(m, "mutual, from scratch", g.test, base, g.ensemble))
        return markdown_table(self._header(["RelaImp", "p (paired)", "Ensemble"]), rows,
                              "ll" + "r" * (self.s.seeds + 4))

    def table_rq2(self) -> str:
        rows = []
        for m in self.s.models:
            base = self.independent[m]
            rows.append(_row(m, "pretrained (independent)", base, None, None))
            if (g := self.alone[m]) is not None:
                rows.append(_row(m, "finetuned alone (control)", g.test, base, g.ensemble))
            if (g := self.finetune[m]) is not None:
                rows.append(_row(m, "mutual finetuning", g.test, base, g.ensemble))
        return markdown_table(self._header(["RelaImp", "p (paired)", "Ensemble"]), rows,
                              "ll" + "r" * (self.s.seeds + 4))

    def table_rq3(self) -> str:
        rows = []
        best = self.exp.best_runs()
        for m, run in zip(self.s.models, best, strict=True):
            start = member_auc(run)["test"]
            k = int(run.name.removeprefix("seed"))
            same = self.finetune[m]
            same_auc = same.auc_of(f"{m}_{k}") if same is not None else None
            mixed_auc = self.mixed.auc_of(m) if self.mixed is not None else None
            rows.append([
                m, f"{start:.4f} (seed {k})",
                *_auc_and_gain(same_auc, start), *_auc_and_gain(mixed_auc, start),
            ])
        ensemble = "—" if self.mixed is None or self.mixed.ensemble is None else (
            f"{self.mixed.ensemble:.4f}")
        rows.append(["mixed ensemble", "", "", "", ensemble, ""])
        return markdown_table(
            ["Model", "Best pretrained", "Same-model group", "RelaImp", "Mixed group",
             "RelaImp"], rows)

    def rq4_points(self, model: str) -> list[tuple[int, GroupResult]]:
        return [(n, g) for n, g in self.sizes[model].items() if g is not None]

    def table_rq4(self) -> str:
        rows = []
        for m in self.s.models:
            for n, g in self.rq4_points(m):
                start = [s for s in g.start if s is not None]
                mean = mean_std(g.test)[0]
                rows.append([
                    m, str(n), format_mean_std(start), format_mean_std(g.test),
                    format_percent(relaimp(mean, mean_std(start)[0])), f"{max(g.test):.4f}",
                    "—" if g.ensemble is None else f"{g.ensemble:.4f}",
                ])
        return markdown_table(
            ["Model", "N", "Pretrained (members)", "Mutual finetuning", "RelaImp",
             "Best member", "Ensemble"], rows)

    def findings(self) -> list[str]:
        """One computed sentence per answered question (no hand-written results)."""
        lines = []
        for q, label, groups in (
            (1, "RQ1 (from scratch)", self.scratch),
            (2, "RQ2 (mutual finetuning)", self.finetune),
            (2, "RQ2 control (finetuned alone)", self.alone),
        ):
            done = {m: g for m, g in groups.items() if g is not None}
            if q not in self.s.questions or not done:
                continue
            gains = {m: relaimp(mean_std(g.test)[0], mean_std(self.independent[m])[0])
                     for m, g in done.items()}
            better = sum(v > 0 for v in gains.values())
            shown = ", ".join(f"{m} {format_percent(v)}" for m, v in gains.items())
            lines.append(f"- {label}: mean test AUC above the independent runs' mean for "
                         f"{better} of {len(gains)} models (RelaImp: {shown}).")
        pairs = {m: (self.finetune[m], self.alone[m]) for m in self.s.models}
        pairs = {m: (f, a) for m, (f, a) in pairs.items() if f is not None and a is not None}
        if pairs:
            gains = {m: relaimp(mean_std(f.test)[0], mean_std(a.test)[0])
                     for m, (f, a) in pairs.items()}
            shown = ", ".join(
                f"{m} {format_percent(v)} (p {_p(pairs[m][0].test, pairs[m][1].test)})"
                for m, v in gains.items()
            )
            lines.append(f"- RQ2, mutual against alone: mutual finetuning beats finetuning alone "
                         f"for {sum(v > 0 for v in gains.values())} of {len(gains)} models "
                         f"(RelaImp of mutual against alone, paired p over runs: {shown}).")
        return lines

    def csv_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for m in self.s.models:
            for k, auc in enumerate(self.independent[m], start=1):
                rows.append({"question": "pretrain", "group": f"independent/{m}/seed{k}",
                             "model": m, "member": m, "start_test_auc": "", "test_auc": auc})
        groups = [("RQ1", self.scratch), ("RQ2", self.finetune), ("RQ2-control", self.alone)]
        for question, by_model in groups:
            for g in by_model.values():
                if g is not None:
                    rows += _member_rows(question, g)
        if self.mixed is not None:
            rows += _member_rows("RQ3", self.mixed)
        for m in self.s.models:
            for _, g in self.rq4_points(m):
                rows += _member_rows("RQ4", g)
        return rows

    def plot(self) -> list[Path]:
        paths = []
        models = list(self.s.models)
        bars = {"independent": [mean_std(self.independent[m]) for m in models]}
        for label, groups in (("mutual, scratch", self.scratch), ("alone, finetuned", self.alone),
                              ("mutual, finetuned", self.finetune)):
            if all(groups[m] is not None for m in models):
                bars[label] = [mean_std(groups[m].test) for m in models]  # type: ignore[union-attr]
        path = self.out / "auc_per_model.png"
        plot_grouped_bars(path, models, bars, ylabel="test AUC",
                          title="Test AUC per model (mean ± std over runs)")
        paths.append(path)
        series = {m: [mean_std(g.test) for _, g in self.rq4_points(m)] for m in models}
        series = {m: v for m, v in series.items() if v}
        if series:
            ns = [n for n, _ in self.rq4_points(next(iter(series)))]
            path = self.out / "auc_vs_group_size.png"
            plot_lines(path, ns, series, xlabel="models finetuned together (N)",
                       ylabel="members' test AUC", title="Mutual finetuning: group size")
            paths.append(path)
        return paths

    def markdown(self, plots: list[Path]) -> str:
        s = self.s
        parts = [
            "# Mutual learning for finetuning CTR models (Yilmaz & Aldemir 2024): results",
            "",
            f"Data: `{s.data}`. Models: {', '.join(s.models)}; {s.seeds} independent runs per "
            f"model ({s.train.epochs} epoch(s), batch {s.train.batch_size}, lr {s.train.lr}); "
            f"finetuning: {s.finetune.epochs} epoch(s) at lr {s.finetune.lr}, best epoch per "
            "member on validation. All AUCs are on the test split. RelaImp = (AUC - 0.5) / "
            "(AUC_base - 0.5) - 1 of the mean AUC against the independent runs' mean; p: "
            "two-sided paired t-test over runs (run k of a group started from, or was "
            "initialised like, independent run k).",
            "",
        ]
        sections = [
            (1, "RQ1: mutual learning from scratch (Table 1)", self.table_rq1),
            (2, "RQ2: mutual learning as finetuning (Table 2)", self.table_rq2),
            (3, "RQ3: mixed vs same-model groups (Table 3)", self.table_rq3),
            (4, "RQ4: number of models (Table 4)", self.table_rq4),
        ]
        for q, title, table in sections:
            if q in s.questions:
                parts += [f"## {title}", "", table(), ""]
        findings = self.findings()
        if findings:
            parts += ["## Summary", "", *findings, ""]
        parts += [f"![{p.stem}]({p.name})" for p in plots]
        return "\n".join(parts) + "\n"


def _auc_and_gain(auc: float | None, start: float) -> list[str]:
    if auc is None:
        return ["—", ""]
    return [f"{auc:.4f}", format_percent(relaimp(auc, start))]


def _member_rows(question: str, g: GroupResult) -> list[dict[str, Any]]:
    spec = read_model_spec(g.root)
    return [
        {"question": question, "group": str(g.root), "model": m["model"], "member": m["name"],
         "start_test_auc": "" if start is None else start, "test_auc": auc}
        for m, auc, start in zip(spec["members"], g.test, g.start, strict=True)
    ]


def write_report(config: YilmazConfig, out: Path) -> str:
    """Write report.md, results.csv and the plots into ``out``; return the markdown."""
    report = YilmazReport(config, out)
    write_csv(out / "results.csv", report.csv_rows())
    text = report.markdown(report.plot())
    files.write_text(out / "report.md", text)
    return text
