"""``mutualctr experiment yilmaz``: mutual learning for finetuning CTR models (Yilmaz &
Aldemir, 2024), research questions RQ1-RQ4.

The runs are planned by :mod:`.plan` and trained by the experiments' engine
(:mod:`mutualctr.experiments.engine`); the report is built from their records by
:mod:`.report`, beside the paper's figures (:mod:`.paper`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mutualctr.experiments.base import Experiment
from mutualctr.experiments.engine import run_plan
from mutualctr.experiments.yilmaz.plan import YilmazConfig, YilmazPlan
from mutualctr.experiments.yilmaz.report import write_report
from mutualctr.flags import Flag


def run(config: YilmazConfig, out: Path, *, overwrite: bool = False,
        log: TextIO | None = None) -> str:
    """Train every run the chosen questions need into ``out`` (reusing finished runs), write
    the report and return its markdown."""
    plan = YilmazPlan(config, out)
    records = run_plan(plan.jobs(), total=len(plan), overwrite=overwrite, log=log)
    return write_report(config, out, records)


EXPERIMENT = Experiment(
    name="yilmaz",
    help="mutual learning for finetuning CTR models (Yilmaz & Aldemir 2024), RQ1-RQ4",
    description=__doc__.split("\n\n")[0],
    config_class=YilmazConfig,
    run=run,
    report=write_report,
    flags=(
        Flag("--models", ("models",), "registry models (alias of `models`; default: the "
             "paper's four)", nargs="+", metavar="MODEL"),
        Flag("--questions", ("questions",), "which research questions, e.g. 1 2 (alias of "
             "`questions`)", type=int, nargs="+", metavar="Q"),
        Flag("--groups", ("groups",), "independent repetitions of RQ1's and RQ2's groups, the "
             "samples of the paired tests (alias of `groups`)", type=int),
        Flag("--max-group", ("max_group",), "RQ4's largest group (alias of `max_group`)",
             type=int),
        Flag("--finetune-epochs", ("finetune.epochs",), "alias of finetune.epochs (default: "
             "the paper's one epoch)", type=int),
        Flag("--batch-size", ("train.batch_size", "finetune.batch_size"), "alias of "
             "train.batch_size and finetune.batch_size (default: the paper's 4000)", type=int),
        Flag("--threads", ("train.num_threads", "finetune.num_threads"), "torch threads (alias "
             "of train.num_threads and finetune.num_threads)", type=int),
        Flag("--no-control", ("control",), "skip RQ2's control (the same runs finetuned "
             "alone)", const=False),
    ),
)
