"""The report of ``mutualctr experiment ektf``: Li et al.'s Tables 2, 3 and 5 and the
student-count scaling from the runs' records (their metrics, by label, one per seed), beside
the paper's own figures (:mod:`.paper`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mutualctr import files
from mutualctr.experiments.ektf.paper import STAR, STAR_P, abs_imp, format_abs_imp, paper_rows
from mutualctr.experiments.ektf.plan import (
    KD_DAGFM,
    EKTFExperimentConfig,
    ablation_label,
    kt_label,
    plan,
)
from mutualctr.experiments.engine import Record, read_records
from mutualctr.experiments.report import markdown_table, plot_lines, write_csv
from mutualctr.methods.dagfm import TEACHER_SUFFIX
from mutualctr.methods.ektf import ENSEMBLE_NAMES, LATEST_STUDENTS, students_ranked
from mutualctr.statistics import format_mean_std, mean_std, paired_t_test
from mutualctr.training.objectives.ektf import VARIANTS

Metrics = Mapping[str, Any]  # metrics.json content of one run


def ensemble(metrics: Metrics, split: str = "test") -> dict[str, float]:
    """The group's combined prediction (EKTF's teacher, an ensemble) or a single model's."""
    by_name = metrics[split]
    for name in ENSEMBLE_NAMES:
        if name in by_name:
            return by_name[name]
    (only,) = by_name.values()
    return only


def best_student(metrics: Metrics) -> dict[str, float]:
    return metrics["test"][students_ranked(metrics)[0]]


def worst_student(metrics: Metrics) -> dict[str, float]:
    return metrics["test"][students_ranked(metrics)[-1]]


# -- tables --------------------------------------------------------------------------------------


def _cells(values: Sequence[float]) -> str:
    return format_mean_std(values) if len(values) > 1 else f"{values[0]:.4f}"


def _values(runs: Sequence[Metrics], pick: Any, metric: str) -> list[float]:
    """One value per run (per seed, in seed order)."""
    return [pick(m)[metric] for m in runs]


def significance(ours: Sequence[float], base: Sequence[float], higher_is_better: bool
                 ) -> tuple[float | None, bool]:
    """Li et al., Table 2: a two-tailed t-test against the best baseline, starred at
    p < 1e-3 (:data:`STAR_P`). The unit is a run: ``ours[i]`` and ``base[i]`` are the runs with
    the same seed (every run of the experiment uses the same seeds), so the test is paired by
    seed (:func:`paired_t_test`). Returns the p-value (None with fewer than two runs) and
    whether to star it: significant *and* an improvement."""
    if len(ours) < 2:
        return None, False
    test = paired_t_test(ours, base)
    improved = test.statistic > 0 if higher_is_better else test.statistic < 0
    return test.p_value, improved and test.p_value < STAR_P


def _row(name: str, runs: Sequence[Metrics], pick: Any, mlp: Sequence[Metrics]
         ) -> dict[str, Any]:
    """Test AUC and logloss and the paper's Abs.Imp against the single MLP."""
    aucs, losses = _values(runs, pick, "auc"), _values(runs, pick, "logloss")
    base_auc = mean_std(_values(mlp, ensemble, "auc"))[0]
    base_loss = mean_std(_values(mlp, ensemble, "logloss"))[0]
    imp_auc, imp_loss = format_abs_imp(*abs_imp(mean_std(aucs)[0], mean_std(losses)[0],
                                                base_auc, base_loss))
    return {"model": name, "test_auc": _cells(aucs), "test_logloss": _cells(losses),
            "abs_imp_auc_points": imp_auc, "abs_imp_logloss": imp_loss,
            "p_auc": "", "p_logloss": ""}


def _format_p(p: float | None) -> str:
    return "n/a (one run)" if p is None else f"{p:.1e}"


def _tested_row(name: str, runs: Sequence[Metrics], pick: Any, mlp: Sequence[Metrics],
                best: Mapping[str, Sequence[Metrics]]) -> dict[str, Any]:
    """:func:`_row` with the t-test against the best baseline by each metric (``best``)."""
    row = _row(name, runs, pick, mlp)
    for metric, higher in (("auc", True), ("logloss", False)):
        p, star = significance(_values(runs, pick, metric),
                               _values(best[metric], ensemble, metric), higher)
        row[f"p_{metric}"] = _format_p(p)
        row[f"test_{metric}"] += STAR if star else ""
    return row


def _singles(results: Mapping[str, Sequence[Metrics]], latest: Sequence[str]
             ) -> dict[str, Sequence[Metrics]]:
    """Table 2's baselines: the single models' runs, by display name."""
    return {"MLP": results["single_mlp"], **{m.upper(): results[f"single_{m}"] for m in latest}}


def best_baseline(singles: Mapping[str, Sequence[Metrics]]) -> dict[str, str]:
    """The single model with the best mean test AUC and the one with the best mean logloss."""
    def mean(name: str, metric: str) -> float:
        return mean_std(_values(singles[name], ensemble, metric))[0]

    return {"auc": max(singles, key=lambda n: mean(n, "auc")),
            "logloss": min(singles, key=lambda n: mean(n, "logloss"))}


def table2(results: Mapping[str, Sequence[Metrics]], size: EKTFExperimentConfig,
           latest: Sequence[str] = LATEST_STUDENTS) -> list[dict[str, Any]]:
    """Single models, then EKTF's rows tested against the best of them (:func:`significance`);
    Abs.Imp is against the single MLP, as in the paper."""
    singles = _singles(results, latest)
    mlp = singles["MLP"]
    best = {metric: singles[name] for metric, name in best_baseline(singles).items()}
    rows = [_row(name, runs, ensemble, mlp) for name, runs in singles.items()]
    ours = [(f"EKTF_MLP (K={size.k}, teacher)", f"ektf_mlp_k{size.k}", ensemble),
            ("EKTF_MLP best student", f"ektf_mlp_k{size.k}", best_student)]
    if latest:
        ours += [("EKTF_Latest (teacher)", "ektf_latest", ensemble),
                 ("EKTF_Latest best student", "ektf_latest", best_student)]
    rows += [_tested_row(name, results[label], pick, mlp, best) for name, label, pick in ours]
    return rows


def table2_note(results: Mapping[str, Sequence[Metrics]],
                latest: Sequence[str] = LATEST_STUDENTS) -> str:
    """How Table 2's columns were computed, and which runs are independent samples."""
    best = best_baseline(_singles(results, latest))
    seeds = len(results["single_mlp"])
    return (
        "abs_imp: Li et al.'s Abs.Imp against the single MLP (AUC difference in percentage "
        "points, logloss difference; the paper gives it for EKTF_MLP's best student). "
        f"p_auc / p_logloss: two-tailed t-test against the best baseline (by AUC: "
        f"{best['auc']}, by logloss: {best['logloss']}), {STAR} where p < {STAR_P:g} and the "
        "difference is an improvement, as in Li et al., Table 2. The unit of the test is a "
        "run (one seed): the teacher and the students of one co-trained group come from one "
        "run and are not independent samples, while runs with different seeds are; each EKTF "
        "run is paired with the baseline's run of the same seed (paired t-test, "
        f"{seeds} run(s) per row here).")


def _group_row(name: str, runs: Sequence[Metrics]) -> dict[str, Any]:
    return {
        "method": name,
        "teacher_auc": _cells([ensemble(m)["auc"] for m in runs]),
        "teacher_logloss": _cells([ensemble(m)["logloss"] for m in runs]),
        "best_student_auc": _cells([best_student(m)["auc"] for m in runs]),
        "worst_student_auc": _cells([worst_student(m)["auc"] for m in runs]),
    }


ABLATION_NAMES = {"ektf": "EKTF", "only_kd": "only KD", "only_dml": "only DML",
                  "no_examination": "w/o examination", "mean": "w/o all (mean ensemble)"}
KT_NAMES = {"online_kd": "Online KD", "kdcl": "KDCL", "eckd": "ECKD",
            KD_DAGFM: "KD-DAGFM (DCNv2 teacher)", "ektf": "EKTF"}
PAPER_ROWS = ("MLP", "PNN", "FINAL(2B)", "ECN", "EKTF_MLP_bs", "EKTF_MLP", "EKTF_Latest")
PAPER_NOTE = (f"Test AUC (as a fraction) and logloss on the paper's datasets, not ours; {STAR}: "
              "p < 1e-3 against the paper's best baseline. EKTF_MLP_bs is EKTF_MLP's best "
              "student; EKTF_PNN, EKTF_FINAL(1B), EKTF_ECN are EKTF_Latest's students (Li et "
              "al., Table 4, Criteo, ML-1M and KKBox only). The paper's ablation (Table 3) "
              "and knowledge-transfer comparison (Table 5) are not transcribed.")
KT_NOTE = ("KD-DAGFM has one student and no ensemble: its teacher columns are its DCNv2 teacher "
           "(one model trained alone on BCE), its best-student columns the finetuned DAGFM "
           "student, and it has no worst student.")


def table3(results: Mapping[str, Sequence[Metrics]], size: EKTFExperimentConfig
           ) -> list[dict[str, Any]]:
    return [_group_row(ABLATION_NAMES[v], results[ablation_label(size.k, v)]) for v in VARIANTS]


def distillation_teacher(metrics: Metrics) -> dict[str, float] | None:
    """A ``dagfm`` run's teacher (test), or None when the metrics hold none."""
    names = [n for n in metrics["test"] if n.endswith(TEACHER_SUFFIX)]
    return metrics["test"][names[0]] if names else None


def _kt_row(method: str, runs: Sequence[Metrics]) -> dict[str, Any]:
    """Table 5's row: a group's (ensemble, best and worst student) or KD-DAGFM's (its teacher
    and its one student, see :data:`KT_NOTE`)."""
    distilled = method == KD_DAGFM
    teachers = [distillation_teacher(m) if distilled else ensemble(m) for m in runs]
    known = [t for t in teachers if t is not None]

    def teacher_cells(metric: str) -> str:
        return _cells([t[metric] for t in known]) if len(known) == len(runs) else ""

    return {
        "method": KT_NAMES[method],
        "teacher_auc": teacher_cells("auc"),
        "teacher_logloss": teacher_cells("logloss"),
        "best_student_auc": _cells([best_student(m)["auc"] for m in runs]),
        "best_student_logloss": _cells([best_student(m)["logloss"] for m in runs]),
        "worst_student_auc": "" if distilled else _cells([worst_student(m)["auc"]
                                                          for m in runs]),
    }


def table5(results: Mapping[str, Sequence[Metrics]], size: EKTFExperimentConfig
           ) -> list[dict[str, Any]]:
    return [_kt_row(m, results[kt_label(size.k, m)]) for m in KT_NAMES]


def scaling(results: Mapping[str, Sequence[Metrics]], size: EKTFExperimentConfig
            ) -> dict[str, list[tuple[float, float]]]:
    """AUC (mean, std over seeds) of the teacher, the best and the worst student, per K."""
    series: dict[str, list[tuple[float, float]]] = {"ensemble (teacher)": [],
                                                    "best student": [], "worst student": []}
    for k in size.k_range:
        runs = results[f"ektf_mlp_k{k}"]
        for name, pick in zip(series, (ensemble, best_student, worst_student), strict=True):
            series[name].append(mean_std([pick(m)["auc"] for m in runs]))
    return series


def results_by_label(records: Sequence[Record]) -> dict[str, list[Metrics]]:
    """The runs' metrics by configuration label, in seed order."""
    results: dict[str, list[Metrics]] = {}
    for record in sorted(records, key=lambda r: r.labels["seed"]):
        results.setdefault(record.labels["label"], []).append(record.metrics)
    return results


def write_report(config: EKTFExperimentConfig, out: Path,
                 records: Sequence[Record] | None = None) -> str:
    """``report.md`` plus CSVs (and the scaling plot) in ``out`` from ``records`` (default: the
    records of the plan's runs in ``out``); returns the markdown."""
    found = read_records(plan(config, out)) if records is None else records
    path = write_tables(out, results_by_label(found), config, config.parts, config.latest)
    return path.read_text()


def write_tables(out: Path, results: Mapping[str, Sequence[Metrics]], size: EKTFExperimentConfig,
                 parts: Sequence[str], latest: Sequence[str] = LATEST_STUDENTS) -> Path:
    """``report.md`` plus CSVs (and the scaling plot) from the runs' metrics by label."""
    sections = ["# EKTF experiment", "",
                f"Size: {size.size} (K = {size.k}, K range {list(size.k_range)}, MLP students "
                f"{list(size.mlp_hidden)}, {size.train.epochs} epoch(s), batch "
                f"{size.train.batch_size}). Test metrics; best/worst student chosen on valid "
                "AUC.", ""]
    tables = []
    if "table2" in parts:
        tables.append(("Table 2: EKTF against single models", "table2",
                       table2(results, size, latest), table2_note(results, latest)))
        tables.append(("Li et al., Table 2 (and Table 4's EKTF_Latest students): the paper's "
                       "figures", "table2_paper", paper_rows(PAPER_ROWS), PAPER_NOTE))
    if "ablation" in parts:
        tables.append((f"Table 3: ablation (MLP students, K={size.k})", "table3",
                       table3(results, size), ""))
    if "kt" in parts:
        tables.append((f"Table 5: knowledge-transfer methods (MLP students, K={size.k})",
                       "table5", table5(results, size), KT_NOTE))
    for title, stem, rows, note in tables:
        write_csv(out / f"{stem}.csv", rows)
        sections += [f"## {title}", "", markdown_table(list(rows[0]),
                                                        [list(r.values()) for r in rows]), ""]
        sections += [note, ""] if note else []
    if "scaling" in parts:
        series = scaling(results, size)
        rows = [{"k": k, **{name: f"{points[i][0]:.4f}" for name, points in series.items()}}
                for i, k in enumerate(size.k_range)]
        write_csv(out / "scaling.csv", rows)
        plot_lines(out / "ektf_scaling.png", list(size.k_range), series,
                   xlabel="number of students K", ylabel="test AUC",
                   title="EKTF_MLP: students vs ensemble")
        sections += ["## Scaling with the number of students", "",
                     markdown_table(list(rows[0]), [list(r.values()) for r in rows]), "",
                     "![scaling](ektf_scaling.png)", ""]
    path = out / "report.md"
    files.write_text(path, "\n".join(sections))
    return path
