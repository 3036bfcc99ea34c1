"""A comparison's finished runs read as :class:`~mutualctr.comparison.outcomes.Outcome` s: the rows
of its table at each seed.

Each row's AUC is that of what would be deployed, read from its run's ``metrics.json`` (the
test split scored once, at the end of training), except the averaging ensemble, which trains
nothing: its alone runs score the validation and test splits and their probabilities are
averaged. A row's training cost counts everything it needs (a finetuned group or a distilled
student counts the alone runs it starts from); its serving cost is measured on what would be
deployed (:mod:`mutualctr.comparison.costs`). The rows:

* ``alone <m>``: each model alone; on a store with behaviour histories its control is
  ``alone <m> without histories``, the same model alone with the history fields excluded;
* ``ensemble``: the mean of the alone runs' probabilities (several models to serve);
* ``distill <m>``: the student distilled from them;
* ``mutual scratch <m>`` and ``mutual finetune <m>``: each member of the mutual group, served
  alone; ``finetune alone <m>`` is the finetuned member's control;
* ``ektf student``: EKTF's best student on validation, served alone; ``ektf ensemble``: its
  teacher, the students' ensemble over the shared embedding, one network;
* ``cetnet fused``: CETNet's fused prediction, one network of every member; ``cetnet member
  <m>``: each member's own prediction, served alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import numpy as np

from mutualctr.comparison import costs
from mutualctr.comparison.outcomes import Outcome, ServingCost, TrainingCost
from mutualctr.comparison.plan import (
    WITHOUT_HISTORIES_WAY,
    CompareConfig,
    Replicate,
    seeds,
    student_of,
    usable_models,
    without_histories,
    without_histories_row,
)
from mutualctr.data.store import EncodedStore
from mutualctr.methods.distill import STUDENT
from mutualctr.metrics import binary_metrics
from mutualctr.runfolders.folder import read_metrics, read_model_spec
from mutualctr.serving.inference import InferenceRun
from mutualctr.training.objectives.ektf import TEACHER

SPLITS = ("valid", "test")


class _Measured:
    """Costs measured once per run (and member), shared by the rows that need them."""

    def __init__(self, store: EncodedStore, latency_seconds: float) -> None:
        self.rows = store.split("test")
        self.latency_seconds = latency_seconds
        self.training = cache(costs.training_cost)
        self.serving = cache(self._serving)

    def _serving(self, run: Path, member: str = "") -> ServingCost:
        served = costs.served_member(run, member) if member else costs.served_run(run)
        return costs.serving_cost(served, self.rows, min_seconds=self.latency_seconds)


def _outcome(row: str, method: str, seed: int, metrics: Mapping[str, Mapping[str, float]],
             training: TrainingCost, serving: ServingCost, control: str = "") -> Outcome:
    return Outcome(row, method, seed, float(metrics["valid"]["auc"]),
                   float(metrics["test"]["auc"]), float(metrics["test"]["logloss"]), control,
                   training, serving)


def _prediction(run: Path, name: str) -> dict[str, dict[str, float]]:
    """``{split: {"auc": .., "logloss": ..}}`` of prediction ``name`` in ``run``'s
    ``metrics.json``."""
    metrics = read_metrics(run)
    return {split: metrics[split][name] for split in SPLITS}


def _members(run: Path) -> list[str]:
    return [m["name"] for m in read_model_spec(run)["members"]]


def collect(config: CompareConfig, out: Path, reasons: Mapping[str, str]) -> list[Outcome]:
    """Every row at every seed, from the finished runs under ``out``."""
    store = EncodedStore.open(config.data)
    measured = _Measured(store, config.latency_seconds)
    models = usable_models(config, reasons)
    methods = [m for m in config.methods if m not in reasons]
    controlled = without_histories(config, store.feature_map, reasons)
    outcomes: list[Outcome] = []
    for seed in seeds(config):
        at = Replicate(out, seed)
        alone = {m: at.folder("alone", m) for m in models}
        start = costs.total(measured.training(run) for run in alone.values())
        for method in methods:
            outcomes += _rows(method, at, alone, start, measured, store, config, controlled)
    return outcomes


def _rows(method: str, at: Replicate, alone: Mapping[str, Path], start: TrainingCost,
          measured: _Measured, store: EncodedStore, config: CompareConfig,
          controlled: Mapping[str, object]) -> list[Outcome]:
    """The rows of one way of training at one seed (see the module docstring); ``controlled``:
    the models alone with a control without the histories."""
    seed = at.seed
    if method == "alone":
        controls = {m: at.folder(WITHOUT_HISTORIES_WAY, m) for m in controlled}
        return [*(_alone_row(f"alone {m}", m, run, seed, measured,
                             without_histories_row(m) if m in controls else "")
                  for m, run in alone.items()),
                *(_alone_row(without_histories_row(m), m, run, seed, measured)
                  for m, run in controls.items())]
    if method == "ensemble":
        return [_outcome("ensemble", "ensemble", seed, _ensemble_metrics(alone.values(), store),
                         start, costs.ensemble_cost([measured.serving(r)
                                                     for r in alone.values()]))]
    if method == "distill":
        run = at.folder("distill")
        return [_outcome(f"distill {student_of(config)}", "distill", seed,
                         _prediction(run, STUDENT),
                         costs.total([measured.training(run), start]),
                         measured.serving(run, STUDENT))]
    if method == "mutual_scratch":
        return _member_rows(at.folder(method), "mutual scratch", "mutual", seed, measured)
    if method == "mutual_finetune":
        return [*_member_rows(at.folder(method), "mutual finetune", "mutual", seed, measured,
                              start, control="finetune alone"),
                *_member_rows(at.folder("finetune_alone"), "finetune alone", "mutual", seed,
                              measured, start)]
    if method == "ektf":
        run = at.folder(method)
        best = costs.best_student(run)
        return [_outcome("ektf student", "ektf", seed, _prediction(run, best),
                         measured.training(run), measured.serving(run, best)),
                _outcome("ektf ensemble", "ektf", seed, _prediction(run, TEACHER),
                         measured.training(run), measured.serving(run))]
    if method == "cetnet":
        run = at.folder(method)
        return [_outcome("cetnet fused", "cetnet", seed, _prediction(run, "fused"),
                         measured.training(run), measured.serving(run)),
                *_member_rows(run, "cetnet member", "cetnet", seed, measured)]
    raise ValueError(f"unknown way {method!r}")  # a programming error: plan.WAYS lists them


def _alone_row(row: str, model: str, run: Path, seed: int, measured: _Measured,
               control: str = "") -> Outcome:
    """The row of ``model`` trained alone in ``run``."""
    return _outcome(row, "train", seed, _prediction(run, model), measured.training(run),
                    measured.serving(run), control)


def _member_rows(run: Path, label: str, method: str, seed: int, measured: _Measured,
                 start: TrainingCost | None = None, control: str = "") -> list[Outcome]:
    """A row per member of the group run ``run``, each served alone; the group's training
    cost (plus ``start``: the runs it began from) is every member's."""
    training = measured.training(run) if start is None else costs.total(
        [measured.training(run), start])
    return [_outcome(f"{label} {name}", method, seed, _prediction(run, name), training,
                     measured.serving(run, name),
                     f"{control} {name}" if control else "")
            for name in _members(run)]


def _ensemble_metrics(runs: Iterable[Path], store: EncodedStore) -> dict[str, dict[str, float]]:
    """AUC and logloss of the mean of the runs' probabilities on each split."""
    opened = [InferenceRun.open(run, store) for run in runs]
    result = {}
    for split in SPLITS:
        rows = store.split(split)
        mean = np.mean([next(iter(run.score(rows).values())) for run in opened], axis=0)
        result[split] = binary_metrics(np.asarray(rows.label), mean)
    return result
