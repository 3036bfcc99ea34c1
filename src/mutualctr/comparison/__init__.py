"""``mutualctr compare``: which way of training the given models wins on the user's data, and at
what serving cost.

It trains, with ``seeds`` full independent replicates, every applicable way (:mod:`.plan`):
each model alone, their averaging ensemble, a student distilled from it, mutual learning from
scratch, mutual finetuning of the alone runs with its finetuned-alone control, EKTF and CETNet
(and, on a store with behaviour histories, each model alone without them, its alone row's
control);
reads each row's AUC and what it cost to train and to serve (:mod:`.rows`, :mod:`.costs`); and
writes the answer (:mod:`.report`): a table with paired tests over seeds against the best
single model (and against a row's own control), a plot of AUC against serving latency with the
Pareto front, ``results.json``, and a recommendation in words. Every run goes through the
experiments' engine, so a killed comparison reruns to the same result, reusing each finished
run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from mutualctr.comparison import report
from mutualctr.comparison.estimate import estimate
from mutualctr.comparison.plan import WAYS, CompareConfig, plan, skipped, without_histories
from mutualctr.comparison.rows import collect
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.experiments.base import Experiment
from mutualctr.experiments.engine import format_duration, run_plan
from mutualctr.flags import Flag


def _store(config: CompareConfig) -> EncodedStore:
    if not config.data:
        raise ConfigError("no data: give --data DIR (or `data:` in the config file)")
    return EncodedStore.open(config.data)


def run(config: CompareConfig, out: Path, *, overwrite: bool = False,
        log: TextIO | None = None) -> str:
    """Train every run of the comparison into ``out`` (finished ones reused), measure the rows
    and write the report; returns its markdown."""
    store = _store(config)
    reasons = skipped(config, store.feature_map)
    for what, why in reasons.items():
        print(f"skipping {what}: {why}", file=log or sys.stderr)
    controls = without_histories(config, store.feature_map, reasons)
    run_plan(plan(config, out, reasons, controls), overwrite=overwrite, log=log)
    return write(config, out, reasons)


def write(config: CompareConfig, out: Path, reasons: dict[str, str] | None = None) -> str:
    """The report of the finished runs under ``out``: ``report.md``, ``results.json`` and
    ``comparison.png``; returns the markdown."""
    if reasons is None:
        reasons = skipped(config, _store(config).feature_map)
    notes = [f"Skipped {what}: {why}." for what, why in reasons.items()]
    title = f"{Path(config.data).name}: {', '.join(config.models)}, {config.seeds} seed(s)"
    return report.write_report(out, collect(config, out, reasons), title=title, notes=notes)


def dry_run(config: CompareConfig, out: Path) -> str:
    """The plan, what is skipped and why, and an estimate of its time from a short training
    probe of each model (:mod:`.estimate`); nothing is trained or written."""
    store = _store(config)
    reasons = skipped(config, store.feature_map)
    jobs = plan(config, out, reasons, without_histories(config, store.feature_map, reasons))
    rates, seconds = estimate(jobs, store, config.train)
    lines = [f"{len(jobs)} runs on {len(store.split('train')):,} training rows; probe: "
             + ", ".join(f"{m} {r:,.0f} rows/s" for m, r in rates.items())]
    lines += [f"  [{i}/{len(jobs)}] {job.describe()}: at most {format_duration(s)}"
              for i, (job, s) in enumerate(zip(jobs, seconds, strict=True), start=1)]
    lines += [f"skipping {what}: {why}" for what, why in reasons.items()]
    lines.append(f"estimated time: at most {format_duration(sum(seconds))} of training "
                 "(early stopping ends most runs sooner; evaluation not counted)")
    return "\n".join(lines)


COMPARISON = Experiment(
    name="compare",
    help="which way of training your models wins on your data, at what serving cost",
    description="Train every applicable way of training the given models on a store (alone, "
                "their ensemble, distillation, mutual learning from scratch and as finetuning "
                "with its control, EKTF, CETNet) with paired tests over seeds, and measure "
                "what each costs to train and to serve.",
    config_class=CompareConfig,
    run=run,
    report=write,
    dry_run=dry_run,
    report_only=True,
    flags=(
        Flag("--models", "models", metavar="MODEL"),
        Flag("--methods", "methods", metavar="METHOD",
             help=f"the ways of training to compare (alias of `methods`; default all: "
                  f"{' '.join(WAYS)})"),
        Flag("--student", "student", metavar="MODEL"),
        Flag("--budget", "budget_seconds", metavar="SECONDS"),
    ),
)
