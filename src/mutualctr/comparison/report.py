"""The answer of ``mutualctr compare``: should the models be trained together, how, and what
will it cost to serve?

The comparison's :class:`~mutualctr.comparison.outcomes.Outcome` s (one per row and seed) become
one :class:`RowSummary` per row (:func:`summarize`): test AUC over the seeds, its difference
from the best single model alone and from the row's control, paired by seed with Student's
paired t-test (:mod:`mutualctr.statistics`), and the training and serving costs. From those:
a markdown table (:func:`markdown`), a recommendation in words (:func:`recommendation`), the
rows on the AUC / latency Pareto front (:func:`pareto_front`, :func:`plot`), and the files of
the report (:func:`write_report`).

The baseline, the best single model alone, is the ``train`` row with the highest mean
*validation* AUC: picking it by test AUC would let the test set choose the baseline it then
judges, which favours the baseline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mutualctr import files
from mutualctr.comparison.outcomes import Outcome, ServingCost, TrainingCost
from mutualctr.experiments.report import markdown_table, pyplot, save_figure
from mutualctr.statistics import mean_std, paired_effect

ALONE_METHOD = "train"  # the method of the rows that train one model alone
ALPHA = 0.05  # the significance level of the recommendation
AUC_DIGITS = 4
REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"
PLOT_FILE = "comparison.png"
LOG_SCALE_RATIO = 10.0  # the plot's latency axis is logarithmic from this max / min ratio on

# why a difference has no p-value (Delta.no_p)
ONE_SEED = "one seed"
NO_SHARED_SEEDS = "no shared seeds"
ONE_SHARED_SEED = "one shared seed"
NO_SPREAD = "equal at every seed"
NO_P_REASONS = {
    ONE_SEED: "one seed: a paired t-test needs at least two seeds",
    NO_SHARED_SEEDS: "the two rows share no seed, so nothing can be paired (the difference "
                     "shown is that of their means)",
    ONE_SHARED_SEED: "the two rows share only one seed: a paired t-test needs two",
    NO_SPREAD: "the two rows have the same test AUC at every seed: no difference to test",
}


@dataclass(frozen=True)
class Delta:
    """One row's test AUC minus another's (``against``), paired by seed.

    Attributes:
        against: the row compared with.
        mean: the mean over the shared seeds of the per-seed difference (with no shared seed,
            the difference of the two rows' means).
        p: the two-sided paired t-test's p-value over the shared seeds, or None where there is
            none (``no_p`` says why).
        pairs: the seeds both rows ran.
        no_p: empty when ``p`` is given, else one of :data:`NO_P_REASONS`.
    """

    against: str
    mean: float
    p: float | None
    pairs: int
    no_p: str = ""


@dataclass(frozen=True)
class RowSummary:
    """One row of the comparison over its seeds.

    Attributes:
        row: the row's label (``alone deepfm``, ``ensemble``, ``mutual finetune deepfm`` ...).
        method: the method that trained it.
        control: the row it is compared with besides the best single model, or empty.
        seeds: the seeds it ran, sorted.
        test_auc_mean, test_auc_std: test AUC over the seeds (sample std, 0 for one seed).
        test_logloss_mean: mean test logloss.
        valid_auc_mean: mean validation AUC (what picks the best single model).
        is_best_single: this is the best single model alone, the baseline of ``vs_best``.
        vs_best: test AUC against the best single model; None for the best single itself, or
            where no model was trained alone.
        vs_control: test AUC against ``control``; None without a control, or when the control
            row is missing from the comparison.
        training: the training cost, each field the mean over the seeds.
        serving: the serving cost: latencies and FLOPs are means over the seeds, parameters
            and models the (rounded) mean, ``single_model`` true only if true at every seed.
    """

    row: str
    method: str
    control: str
    seeds: tuple[int, ...]
    test_auc_mean: float
    test_auc_std: float
    test_logloss_mean: float
    valid_auc_mean: float
    is_best_single: bool
    vs_best: Delta | None
    vs_control: Delta | None
    training: TrainingCost
    serving: ServingCost

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


# -- summaries -----------------------------------------------------------------------------------


def summarize(outcomes: Sequence[Outcome]) -> list[RowSummary]:
    """One :class:`RowSummary` per row, in the order the rows first appear in ``outcomes``.

    Raises:
        ValueError: no outcomes, a row at one seed twice, or a row whose method or control
            differs between seeds.
    """
    rows = _by_row(outcomes)
    best = _best_single_row(rows)
    return [_summary(runs, rows, best) for runs in rows.values()]


def _by_row(outcomes: Sequence[Outcome]) -> dict[str, list[Outcome]]:
    """The outcomes grouped by row, each row's sorted by seed, after checking them."""
    if not outcomes:
        raise ValueError("a comparison needs at least one outcome")
    rows: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        rows.setdefault(outcome.row, []).append(outcome)
    for name, runs in rows.items():
        runs.sort(key=lambda o: o.seed)
        seeds = [o.seed for o in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"row {name!r} has more than one outcome for a seed: {seeds}")
        if len({(o.method, o.control) for o in runs}) > 1:
            raise ValueError(f"row {name!r} changes its method or control between seeds")
    return rows


def _mean(values: Sequence[float]) -> float:
    return mean_std(values)[0]


def _best_single_row(rows: dict[str, list[Outcome]]) -> str | None:
    """The ``train`` row with the highest mean validation AUC (the first one on a tie), or
    None when no model was trained alone. Chosen on validation, never on test, and never a
    row that is another's control (a model alone without the store's histories): the
    baseline is one of the models as given."""
    controls = {runs[0].control for runs in rows.values()}
    alone = [name for name, runs in rows.items()
             if runs[0].method == ALONE_METHOD and name not in controls]
    if not alone:
        return None
    return max(alone, key=lambda name: _mean([o.valid_auc for o in rows[name]]))


def _summary(runs: list[Outcome], rows: dict[str, list[Outcome]], best: str | None
             ) -> RowSummary:
    first = runs[0]
    auc_mean, auc_std = mean_std([o.test_auc for o in runs])
    return RowSummary(
        row=first.row,
        method=first.method,
        control=first.control,
        seeds=tuple(o.seed for o in runs),
        test_auc_mean=auc_mean,
        test_auc_std=auc_std,
        test_logloss_mean=_mean([o.test_logloss for o in runs]),
        valid_auc_mean=_mean([o.valid_auc for o in runs]),
        is_best_single=first.row == best,
        vs_best=None if best in (None, first.row) else paired_delta(runs, rows[best]),
        vs_control=paired_delta(runs, rows[first.control]) if first.control in rows else None,
        training=_field_means(TrainingCost, [o.training for o in runs]),
        serving=_field_means(ServingCost, [o.serving for o in runs]),
    )


def paired_delta(runs: Sequence[Outcome], others: Sequence[Outcome]) -> Delta:
    """Test AUC of ``runs`` minus that of ``others`` (another row), paired by seed over the
    seeds both ran (:func:`~mutualctr.statistics.paired_effect`)."""
    mine = {o.seed: o.test_auc for o in runs}
    theirs = {o.seed: o.test_auc for o in others}
    against = others[0].row
    shared = sorted(mine.keys() & theirs.keys())
    if not shared:
        difference = _mean(list(mine.values())) - _mean(list(theirs.values()))
        return Delta(against, difference, None, 0, NO_SHARED_SEEDS)
    effect = paired_effect([mine[s] for s in shared], [theirs[s] for s in shared])
    p = None if math.isnan(effect.p_value) else effect.p_value
    return Delta(against, effect.mean, p, effect.n, _no_p(p, len(shared), len(mine)))


def _no_p(p: float | None, shared: int, seeds: int) -> str:
    """Why a paired difference over ``shared`` seeds (of a row's ``seeds``) has no p."""
    if p is not None:
        return ""
    if shared >= 2:
        return NO_SPREAD
    return ONE_SEED if seeds == 1 else ONE_SHARED_SEED


Cost = TypeVar("Cost", TrainingCost, ServingCost)


def _field_means(kind: type[Cost], costs: Sequence[Cost]) -> Cost:
    """Each field's mean over ``costs``: floats as they are, integers rounded, flags true only
    when true in every one."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        column = [getattr(c, field.name) for c in costs]
        if isinstance(column[0], bool):
            values[field.name] = all(column)
        elif isinstance(column[0], int):
            values[field.name] = round(_mean(column))
        else:
            values[field.name] = _mean(column)
    return kind(**values)


def best_single(summaries: Sequence[RowSummary]) -> RowSummary | None:
    """The best single model alone (the baseline), or None when no model was trained alone."""
    return next((s for s in summaries if s.is_best_single), None)


# -- formatting ----------------------------------------------------------------------------------


SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")


def _significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits in fixed notation: 0.0123, 12.3, 1234."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_si(value: float, unit: str = "") -> str:
    """A count with an SI prefix, three significant digits: ``3.46 GFLOP``, ``1.23M``."""
    power = 0
    if value and math.isfinite(value):
        power = min(max(math.floor(math.log10(abs(value)) / 3), 0), len(SI_PREFIXES) - 1)
    number = _significant(value / 1000.0**power)
    return f"{number} {SI_PREFIXES[power]}{unit}" if unit else f"{number}{SI_PREFIXES[power]}"


def format_duration(seconds: float) -> str:
    """Wall time: ``42.0 s``, ``4m 05s``, ``2h 03m``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_p(p: float | None) -> str:
    """A p-value: ``n/a`` where there is none, ``< 0.0001``, else two significant digits."""
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def _format_auc(summary: RowSummary) -> str:
    if summary.n_seeds == 1:
        return f"{summary.test_auc_mean:.{AUC_DIGITS}f}"
    return f"{summary.test_auc_mean:.{AUC_DIGITS}f} ± {summary.test_auc_std:.{AUC_DIGITS}f}"


def _format_difference(value: float) -> str:
    return f"{value:+.{AUC_DIGITS}f}"


def _format_delta(delta: Delta) -> str:
    """``+0.0012 (p 0.04)``."""
    return f"{_format_difference(delta.mean)} (p {format_p(delta.p)})"


def _best_cell(summary: RowSummary) -> str:
    if summary.is_best_single:
        return "best single"
    return "—" if summary.vs_best is None else _format_delta(summary.vs_best)


def _control_cell(summary: RowSummary) -> str:
    if not summary.control:
        return "—"
    if summary.vs_control is None:
        return f"n/a (no {summary.control} row)"
    return f"{_format_delta(summary.vs_control)} vs {summary.control}"


# -- the table -----------------------------------------------------------------------------------


HEADER = (
    "method", "seeds", "test AUC", "test logloss", "Δ AUC vs best single (p)",
    "Δ AUC vs control (p)", "train member-epochs", "train wall time", "train FLOPs",
    "ms / 1k rows, batch 1", "ms / 1k rows, batch 1024", "parameters", "FLOPs / row",
    "one model?",
)


def _table_row(s: RowSummary) -> list[str]:
    train, serve = s.training, s.serving
    return [
        s.row, str(s.n_seeds), _format_auc(s), f"{s.test_logloss_mean:.4f}", _best_cell(s),
        _control_cell(s), f"{train.member_epochs:.3g}", format_duration(train.seconds),
        format_si(train.flops, "FLOP"), _significant(serve.ms_per_1000_batch1),
        _significant(serve.ms_per_1000_batch1024), format_si(serve.parameters),
        format_si(serve.flops_per_row, "FLOP"), "yes" if serve.single_model else "no",
    ]


def table_notes(summaries: Sequence[RowSummary]) -> list[str]:
    """What the table's numbers are: the samples, the baseline, the test, the costs, and why
    a p-value is missing where one is."""
    return [
        "Each seed is a full, independent replicate: every row is trained anew from it, its "
        "pretraining and teachers included, so a row has one sample per seed. Models trained "
        "together (the members of a mutual group, EKTF's students, CETNet's members) are not "
        "separate samples: each is a row of its own, with one value per seed.",
        _baseline_note(summaries),
        "Δ: the mean over seeds of the per-seed difference in test AUC (this row minus the "
        "other, paired by seed); p: Student's paired t-test over the seeds both rows ran, "
        "two-sided, n - 1 degrees of freedom. Δ vs control compares a row with the same extra "
        "training done without peers (e.g. mutual finetune X with finetune alone X), or, on a "
        "store with behaviour histories, a model alone with the same model alone without "
        "them (alone X with alone X without histories: what the histories add).",
        *_missing_p_notes(summaries),
        "Training cost: means over seeds; member-epochs and FLOPs count every model trained "
        "for the row, its pretraining and teachers included (FLOPs estimated as 3 x forward "
        "FLOPs per row x rows x epochs). Serving cost: measured on this CPU, latencies as "
        "means over seeds; one model? says whether the row deploys as one exported model.",
    ]


def _baseline_note(summaries: Sequence[RowSummary]) -> str:
    best = best_single(summaries)
    if best is None:
        return "No model was trained alone, so no row is compared with a best single model."
    return (
        f"Best single: {best.row}, the model trained alone with the highest mean validation "
        f"AUC ({best.valid_auc_mean:.{AUC_DIGITS}f}). It is chosen on validation, not test, so "
        "the test set does not pick the baseline it then judges; another model alone may "
        "still show a higher test AUC."
    )


def _missing_p_notes(summaries: Sequence[RowSummary]) -> list[str]:
    """One note per distinct reason a p-value is n/a, naming the comparisons it affects."""
    affected: dict[str, list[str]] = {}
    for s in summaries:
        for delta in (s.vs_best, s.vs_control):
            if delta is not None and delta.no_p:
                affected.setdefault(delta.no_p, []).append(f"{s.row} vs {delta.against}")
    return [f"p n/a for {', '.join(pairs)}: {NO_P_REASONS[reason]}."
            for reason, pairs in affected.items()]


def markdown(summaries: Sequence[RowSummary], *, title: str = "",
             notes: Sequence[str] = ()) -> str:
    """The comparison of one data set as a markdown table (``## title`` above it when given),
    with :func:`table_notes` and ``notes`` listed under it."""
    heading = [f"## {title}", ""] if title else []
    table = markdown_table(HEADER, [_table_row(s) for s in summaries])
    bullets = [f"- {note}" for note in (*table_notes(summaries), *notes)]
    return "\n".join([*heading, table, "", "Notes:", "", *bullets])


# -- the recommendation --------------------------------------------------------------------------


def _significant_gain(s: RowSummary, alpha: float) -> bool:
    """Better than the best single model, with a paired p below ``alpha``."""
    d = s.vs_best
    return d is not None and d.p is not None and d.p < alpha and d.mean > 0


def _top(summaries: Sequence[RowSummary], keep: Callable[[RowSummary], bool]
         ) -> RowSummary | None:
    """The row with the highest mean test AUC among those ``keep`` accepts, or None."""
    kept = [s for s in summaries if keep(s)]
    return max(kept, key=lambda s: s.test_auc_mean) if kept else None


def _gain_words(s: RowSummary, *, versus: str = "", with_p: bool = True) -> str:
    """``+0.0012 AUC vs alone deepfm, p 0.04``: the difference from the best single model,
    naming it when ``versus`` is given, with the p-value when ``with_p``."""
    assert s.vs_best is not None
    words = _format_difference(s.vs_best.mean)
    words += f" AUC vs {versus}" if versus else ""
    return f"{words}, p {format_p(s.vs_best.p)}" if with_p else words


def _cost_words(s: RowSummary, best: RowSummary) -> str:
    """``2 models, 2.1x the latency of alone deepfm at batch 1024``."""
    models = f"{s.serving.models} model{'s' if s.serving.models != 1 else ''}"
    base = best.serving.ms_per_1000_batch1024
    if base <= 0:
        return models
    ratio = s.serving.ms_per_1000_batch1024 / base
    return f"{models}, {ratio:.1f}x the latency of {best.row} at batch 1024"


def recommendation(summaries: Sequence[RowSummary], *, alpha: float = ALPHA) -> str:
    """What to train, in words: the best row deployable as one model and the best at any
    serving cost, each only when it beats the best single model with a paired ``p < alpha``;
    otherwise that nothing did, and which row came closest. With one seed, that no test is
    possible, and the rows that are best by mean. One sentence per line."""
    best = best_single(summaries)
    if best is None:
        return _without_baseline(summaries)
    others = [s for s in summaries if not s.is_best_single and s.vs_best is not None]
    if best.n_seeds < 2:
        return _one_seed(others, best)
    return "\n".join([_one_model_sentence(others, best, alpha),
                      _any_cost_sentence(others, best, alpha)])


def _one_model_sentence(others: Sequence[RowSummary], best: RowSummary, alpha: float) -> str:
    winner = _top(others, lambda s: s.serving.single_model and _significant_gain(s, alpha))
    if winner is not None:
        return f"One deployed model: {winner.row} ({_gain_words(winner, versus=best.row)})."
    lead = (f"One deployed model: no way of training beat {best.row} significantly at "
            f"{best.n_seeds} seeds")
    closest = _top(others, lambda s: s.serving.single_model)
    if closest is None:
        return f"{lead}; no other one-model row was trained."
    return f"{lead}; the best one-model row is {closest.row} ({_gain_words(closest)})."


def _any_cost_sentence(others: Sequence[RowSummary], best: RowSummary, alpha: float) -> str:
    winner = _top(others, lambda s: _significant_gain(s, alpha))
    if winner is not None:
        return (f"Best at any serving cost: {winner.row} ({_gain_words(winner)}, "
                f"{_cost_words(winner, best)}).")
    closest = _top(others, lambda s: True)
    if closest is None:
        return f"Best at any serving cost: {best.row}, the only row."
    return (f"Best at any serving cost: nothing beat {best.row} significantly either; the "
            f"highest mean test AUC is {closest.row} ({_gain_words(closest)}, "
            f"{_cost_words(closest, best)}).")


def _one_seed(others: Sequence[RowSummary], best: RowSummary) -> str:
    lines = ["One seed: no significance test is possible (a paired t-test needs at least two "
             "seeds, each a full replicate); what follows is by the test AUC of that seed."]
    single = _top(others, lambda s: s.serving.single_model)
    if single is not None:
        lead = _lead(single, best, "The best one-model row is", "one-model row")
        lines.append(f"{lead} {single.row} "
                     f"({_gain_words(single, versus=best.row, with_p=False)}).")
    top = _top(others, lambda s: True)
    if top is not None:
        lead = _lead(top, best, "The best at any serving cost is", "row")
        lines.append(f"{lead} {top.row} "
                     f"({_gain_words(top, with_p=False)}, {_cost_words(top, best)}).")
    return "\n".join(lines)


def _lead(row: RowSummary, best: RowSummary, ahead: str, kind: str) -> str:
    """How to introduce the top row of one seed: as the best when it is ahead of the best
    single, else as the closest to it (the best single model alone is then the answer)."""
    if row.vs_best is not None and row.vs_best.mean > 0:
        return ahead
    return f"No {kind} beat {best.row} at that seed; the closest is"


def _without_baseline(summaries: Sequence[RowSummary]) -> str:
    top = _top(summaries, lambda s: True)
    assert top is not None
    return (f"No model was trained alone, so nothing can be compared with one; the highest "
            f"mean test AUC is {top.row} ({top.test_auc_mean:.{AUC_DIGITS}f}).")


# -- the Pareto front and its plot ---------------------------------------------------------------


def _dominates(a: RowSummary, b: RowSummary) -> bool:
    """``a`` is at least as good as ``b`` in test AUC and latency, and better in one."""
    auc_a, auc_b = a.test_auc_mean, b.test_auc_mean
    lat_a, lat_b = a.serving.ms_per_1000_batch1024, b.serving.ms_per_1000_batch1024
    return auc_a >= auc_b and lat_a <= lat_b and (auc_a > auc_b or lat_a < lat_b)


def pareto_front(summaries: Sequence[RowSummary]) -> list[str]:
    """The rows no other row dominates in (higher mean test AUC, lower latency at batch 1024),
    by increasing latency (then decreasing AUC). Rows equal in both are all kept."""
    front = [s for s in summaries if not any(_dominates(o, s) for o in summaries)]
    front.sort(key=lambda s: (s.serving.ms_per_1000_batch1024, -s.test_auc_mean))
    return [s.row for s in front]


def plot(summaries: Sequence[RowSummary], path: str | Path, *, title: str = "") -> None:
    """Mean test AUC (± std over seeds) against serving latency per 1,000 rows at batch 1024,
    every row a labelled point, the Pareto front a step line with its points ringed; the
    latency axis is logarithmic when it spans :data:`LOG_SCALE_RATIO` or more. Saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [s.serving.ms_per_1000_batch1024 for s in summaries]
    ys = [s.test_auc_mean for s in summaries]
    ax.errorbar(xs, ys, yerr=[s.test_auc_std for s in summaries], fmt="o", capsize=3,
                color="tab:blue", label="row (mean ± std over seeds)")
    for s, x, y in zip(summaries, xs, ys, strict=True):
        ax.annotate(s.row, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    by_row = {s.row: s for s in summaries}
    front = [by_row[row] for row in pareto_front(summaries)]
    fx = [s.serving.ms_per_1000_batch1024 for s in front]
    fy = [s.test_auc_mean for s in front]
    ax.step(fx, fy, where="post", color="tab:red", alpha=0.7, label="Pareto front")
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="tab:red", linewidths=1.5)
    if min(xs) > 0 and max(xs) / min(xs) >= LOG_SCALE_RATIO:
        ax.set_xscale("log")
    ax.set_xlabel("serving latency, ms per 1,000 rows at batch 1024")
    ax.set_ylabel("test AUC")
    ax.set_title(title or "test AUC against serving latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    with files.atomic_path(path) as tmp:
        save_figure(fig, tmp)


# -- the report's files --------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` in plain JSON types: dataclasses as dicts, tuples as lists, and non-finite
    floats (which JSON cannot hold) as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(outcomes: Sequence[Outcome], summaries: Sequence[RowSummary], *, title: str = "",
            notes: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the report rests on, in plain JSON types: every outcome, every summary (with
    its number of seeds), the best single row, the Pareto front and the recommendation."""
    best = best_single(summaries)
    return {
        "title": title,
        "best_single": None if best is None else best.row,
        "alpha": ALPHA,
        "recommendation": recommendation(summaries),
        "pareto_front": pareto_front(summaries),
        "notes": [*table_notes(summaries), *notes],
        "summaries": [{**_plain(s), "n_seeds": s.n_seeds} for s in summaries],
        "outcomes": [_plain(o) for o in outcomes],
    }


def write_report(out_dir: str | Path, outcomes: Sequence[Outcome], *, title: str,
                 notes: Sequence[str] = ()) -> str:
    """Write ``report.md`` (the table, the recommendation and the Pareto front),
    ``results.json`` (:func:`to_json`) and ``comparison.png`` (:func:`plot`) into ``out_dir``;
    return the markdown."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = summarize(outcomes)
    text = "\n".join([
        markdown(summaries, title=title, notes=notes), "",
        "### Recommendation", "", recommendation(summaries).replace("\n", "\n\n"), "",
        f"Pareto front (higher test AUC, lower latency at batch 1024): "
        f"{', '.join(pareto_front(summaries))}.", "",
        f"![test AUC against serving latency]({PLOT_FILE})", "",
    ])
    files.write_text(out / REPORT_FILE, text)
    files.write_json(out / RESULTS_FILE, to_json(outcomes, summaries, title=title, notes=notes))
    plot(summaries, out / PLOT_FILE, title=title)
    return text
