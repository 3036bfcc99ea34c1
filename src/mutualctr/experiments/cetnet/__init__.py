"""``mutualctr experiment cetnet``: CETNet against single- and multi-embedding scaling, and the
paper's ablations (Liu et al., "A Collaborative Ensemble Framework for CTR Prediction").

Three tables, each a set of runs (one run folder per configuration and seed under
``OUT/runs/``, planned by :mod:`.plan` and trained by the experiments' engine,
:mod:`mutualctr.experiments.engine`), then a report built from the runs' records only
(:mod:`.report`):

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
The report prints Liu et al.'s own figures (:mod:`.paper`) beside ours with the paper's
improvement measure, and pairs configurations by seed for its significance tests. Everything
is sized by the config (models, scales, seeds, epochs, rows), so a small run finishes in
minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mutualctr.experiments.base import Experiment
from mutualctr.experiments.cetnet.plan import TABLES, CETNetExperimentConfig, scorer
from mutualctr.experiments.cetnet.plan import plan as cetnet_plan
from mutualctr.experiments.cetnet.report import write_report
from mutualctr.experiments.engine import run_plan
from mutualctr.flags import Flag


def run(config: CETNetExperimentConfig, out: Path, *, overwrite: bool = False,
        log: TextIO | None = None) -> str:
    """Train every configuration of the chosen tables for every seed into ``out`` (reusing
    finished runs), write the report from every record under ``OUT/runs`` and return its
    markdown."""
    jobs = cetnet_plan(config, out)
    run_plan(jobs, overwrite=overwrite, log=log, score=scorer(config))
    return write_report(config, out)


EXPERIMENT = Experiment(
    name="cetnet",
    help="CETNet vs SE/ME scaling (Table 4), its ablations (Table 3) and the sequence models' "
         "comparison (Table 1: --tables main)",
    description="Run the CETNet experiment on an encoded store and write OUT/report.md.",
    config_class=CETNetExperimentConfig,
    run=run,
    report=write_report,
    flags=(Flag("--tables", ("tables",), "alias of `tables`", nargs="+", choices=TABLES),),
    report_only=True,
)
