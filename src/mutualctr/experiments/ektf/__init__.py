"""``mutualctr experiment ektf``: the EKTF paper's tables on one encoded store.

Writes into ``--out``: ``report.md`` with

* Table 2: single models (MLP, PNN, FINAL, ECN) against EKTF_MLP, its best student, and
  EKTF_Latest (PNN + FINAL + ECN students) and its best student;
* Table 3: the ablation (EKTF, only KD, only DML, without examination, plain mean);
* the student-count scaling K = 2..10 (ensemble, best and worst student; ``ektf_scaling.png``);
* Table 5: knowledge-transfer methods (Online KD, KDCL, ECKD, EKTF) over the same MLP students,
  and KD-DAGFM (a DAGFM student distilled from a DCNv2 teacher, then finetuned);

plus one CSV per table and one run folder per (run, seed) under ``runs/`` (re-running resumes).
"Best student" is chosen on the validation AUC and reported on test. ``--size`` picks how big
the students and how long the training are (``tiny`` for a smoke test, ``small`` for a CPU,
``paper`` for the authors' settings); ``--parts`` runs a subset of the tables.

The runs are planned by :mod:`.plan` and trained by the experiments' engine
(:mod:`mutualctr.experiments.engine`); the report is built from their records by
:mod:`.report`, beside the paper's figures (:mod:`.paper`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mutualctr.experiments.base import Experiment
from mutualctr.experiments.ektf.plan import PARTS, SIZES, EKTFExperimentConfig, size_preset
from mutualctr.experiments.ektf.plan import plan as ektf_plan
from mutualctr.experiments.ektf.report import write_report
from mutualctr.experiments.engine import run_plan
from mutualctr.flags import Flag


def run(config: EKTFExperimentConfig, out: Path, *, overwrite: bool = False,
        log: TextIO | None = None) -> str:
    """Train every run of the chosen parts for every seed into ``out`` (reusing finished runs),
    write the report and return its markdown."""
    records = run_plan(ektf_plan(config, out), overwrite=overwrite, log=log)
    return write_report(config, out, records)


EXPERIMENT = Experiment(
    name="ektf",
    help="EKTF (Li et al.): Tables 2, 3, 5 and the student-count scaling",
    description=__doc__.split("\n\n")[0],
    config_class=EKTFExperimentConfig,
    run=run,
    report=write_report,
    presets=size_preset,
    flags=(
        Flag("--size", ("size",), "alias of `size` (default small)", choices=tuple(SIZES)),
        Flag("--parts", ("parts",), "alias of `parts`", nargs="+", choices=PARTS),
        Flag("--k-range", ("k_range",), "alias of `k_range`", type=int, nargs="+"),
        Flag("--latest", ("latest",), "EKTF_Latest's students (alias of `latest`); none: skip "
             "it", nargs="*", metavar="MODEL"),
        Flag("--hidden", ("mlp_hidden",), "alias of `mlp_hidden`", type=int, nargs="+"),
        Flag("--batch-size", ("train.batch_size",), "alias of train.batch_size", type=int),
    ),
)
