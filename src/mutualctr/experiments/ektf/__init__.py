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
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from mutualctr.cli_config import add_experiment_arguments, experiment_config
from mutualctr.experiments.ektf.plan import (
    PARTS,
    SIZES,
    EKTFExperimentConfig,
    size_preset,
)
from mutualctr.experiments.ektf.plan import plan as plan_runs
from mutualctr.experiments.ektf.report import Metrics, write_report
from mutualctr.methods import runner


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ektf", help="EKTF (Li et al.): Tables 2, 3, 5 and the student-count scaling",
        description=__doc__.split("\n\n")[0],
    )
    add_experiment_arguments(parser, keys="data, size, parts, seeds, k, k_range, mlp_hidden, "
                             "latest, train")
    parser.add_argument("--size", choices=list(SIZES), help="alias of `size` (default small)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, help="alias of `parts`")
    parser.add_argument("--k-range", type=int, nargs="+", help="alias of `k_range`")
    parser.add_argument("--latest", nargs="*", metavar="MODEL",
                        help="EKTF_Latest's students (alias of `latest`); none: skip it")
    parser.add_argument("--hidden", type=int, nargs="+", help="alias of `mlp_hidden`")
    parser.add_argument("--batch-size", type=int, help="alias of train.batch_size")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = {"size": args.size, "parts": args.parts, "k_range": args.k_range,
             "latest": args.latest, "mlp_hidden": args.hidden,
             "train.batch_size": args.batch_size}
    config = experiment_config(EKTFExperimentConfig, args, flags, presets=size_preset)
    if config is None:
        return 0
    runs = plan_runs(config, config.parts, config.latest)
    results: dict[str, list[Metrics]] = {label: [] for label in runs}
    for seed in range(config.train.seed, config.train.seed + config.seeds):
        train = replace(config.train, seed=seed)
        for label, job in runs.items():
            print(f"== {label} (seed {seed})", file=sys.stderr, flush=True)
            result = runner.run(job.method, replace(job.config, data=config.data, train=train),
                                args.out / "runs" / label / f"seed{seed}",
                                overwrite=args.overwrite)
            results[label].append(result.metrics)
    print(write_report(args.out, results, config, config.parts, config.latest))
    return 0
