"""``mutualctr experiment cetnet``: CETNet against single- and multi-embedding scaling, and the
paper's ablations (Liu et al., "A Collaborative Ensemble Framework for CTR Prediction").

Three tables, each a set of runs (one run folder per configuration and seed under
``OUT/runs/``), then a report built from the run folders only:

* ``main`` (the paper's Table 1, section 4.2; not run by default, it needs a store with
  behaviour sequences): baselines alone at embedding 64 (xDeepFM, DCNv2, DHEN, Wukong, DIN,
  DIEN, InterFormer) and CETNet pairs of members at 32 (DIN + DIEN, InterFormer + InterFormer,
  + DCNv2, + DHEN), each pair at every ``alpha`` of :data:`~.paper.MAIN_ALPHAS`, the one
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
The report prints Liu et al.'s own figures (:mod:`.paper`)
beside ours with the paper's improvement measure, and pairs configurations by seed for its
significance tests. Everything is sized by the config (models, scales, seeds, epochs, rows), so
a small run finishes in minutes.
"""


from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from mutualctr.cli_config import add_experiment_arguments, experiment_config
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.experiments.cetnet.plan import TABLES, CETNetExperimentConfig, run_job
from mutualctr.experiments.cetnet.plan import plan as plan_runs
from mutualctr.experiments.cetnet.report import METRIC_NAMES, _score, write_report
from mutualctr.methods.cetnet import group_ids


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
    jobs = plan_runs(config)
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
