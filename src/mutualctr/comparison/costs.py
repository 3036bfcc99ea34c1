"""What training and serving a comparison's rows cost: FLOPs, latency, parameters, epochs, time.

Serving is measured on what would be deployed, the run written by
:func:`~mutualctr.serving.export.write_exported` as TorchScript and loaded back with
``torch.jit.load``, fed tensors built from real encoded rows of the store. A :class:`Servable`
says what that is; one function builds it for each deployable thing:

* :func:`served_run`: a run folder as it is exported: one model (``train``; a
  standalone folder written by :func:`~mutualctr.methods.ektf.export_best_student`), or a group
  served as one network (CETNet's fused prediction: every member and the fusion);
* :func:`served_member`: one member of a group run alone, as ``export_best_student`` writes it
  (the model with its own copy of a shared embedding, under the independent objective): a
  mutual member, EKTF's best student (:func:`best_student`), a distill run's student without
  its frozen teachers.

:func:`serving_cost` measures a :class:`Servable`; an averaging ensemble of runs is the sum of
its runs' costs (:func:`ensemble_cost`): its models run one after the other.

Training is read from the run folders: :func:`training_cost` of one run folder (a staged
method's stage, e.g. KD-DAGFM's, is one), :func:`total` of several (a finetuned group and its
pretraining runs; an ensemble and its runs).
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mutualctr.comparison.outcomes import ServingCost, TrainingCost
from mutualctr.data.arrays import SplitArrays
from mutualctr.data.loader import BatchLoader
from mutualctr.data.schema import FeatureMap
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.methods import get_method, method_names
from mutualctr.methods.base import Built, Method
from mutualctr.methods.ektf import students_ranked
from mutualctr.models.base import CTRModel
from mutualctr.runfolders.folder import (
    CONFIG_FILE,
    METHOD_KEY,
    read_config,
    read_history,
    read_metrics,
)
from mutualctr.runfolders.restore import load_trained
from mutualctr.serving.export import as_batch, load_torchscript, write_exported
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.base import Objective
from mutualctr.training.objectives.independent import IndependentObjective

FLOP_ROWS = 256  # rows of the batch whose forward pass is counted
LATENCY_BATCH_SIZES = (1, 1024)  # what ServingCost reports
BACKWARD_FACTOR = 3  # a training step: the forward pass and a backward pass of about twice it
WARMUP_CALLS = 3  # TorchScript's profiling executor optimises the graph over the first calls
MIN_CALLS = 10
MIN_SECONDS = 0.25
REPEATS = 3  # timed stretches, the fastest kept

Inputs = tuple[torch.Tensor, ...]  # the exported signature: categorical, numeric, *sequences


# -- counting and timing ----------------------------------------------------------------------

def forward_flops_per_row(forward: Callable[..., Any], inputs: Inputs) -> float:
    """Floating-point operations per row of one ``forward(*inputs)``, as
    :class:`torch.utils.flop_counter.FlopCounterMode` counts them, divided by the rows of
    ``inputs`` (the first tensor's length).

    That counter counts the matrix products (``mm``, ``addmm``, ``bmm``, convolutions,
    attention), a multiply-add as 2 and a bias add as nothing; element-wise operations
    (activations, the sigmoid, the mean pooling of sequences, numeric values times their
    vectors) and embedding lookups count 0. So a DNN is ``2 x in x out`` per linear layer and
    its head; its table, however large, adds no FLOPs (its size shows in the parameters).
    Count on a batch of real rows (:func:`sample_inputs`): a model whose work depends on the
    ids (padding in histories) is counted as it runs on the data.
    """
    rows = inputs[0].shape[0]
    if rows == 0:
        raise ValueError("need at least one row to count FLOPs per row")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(*inputs)
    return counter.get_total_flops() / rows


def latency_ms_per_1000(
    model: Callable[..., Any], inputs: Inputs, batch_size: int, *,
    warmup: int = WARMUP_CALLS, min_calls: int = MIN_CALLS, min_seconds: float = MIN_SECONDS,
    repeats: int = REPEATS, clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Milliseconds ``model`` takes per 1,000 rows when they come in batches of
    ``batch_size``, without autograd.

    ``inputs`` holds at least ``batch_size`` rows; they are cut into ``len // batch_size``
    batches that the calls go through in turn (so one row at a time does not score one row
    from the cache over and over). ``warmup`` calls run untimed, then ``repeats`` stretches of
    calls are timed, each until there were at least ``min_calls`` and ``min_seconds`` had
    passed on ``clock``; the fastest stretch gives 1e6 x seconds / (calls x batch_size). The
    fastest, as ``timeit`` takes it: other work on the machine only ever slows a stretch down.
    ``clock`` is injectable for tests.
    """
    batches = _batches(inputs, batch_size)
    with torch.no_grad():
        for call in range(warmup):
            model(*batches[call % len(batches)])
        return min(_stretch(model, batches, min_calls, min_seconds, clock) / batch_size
                   for _ in range(repeats))


def _stretch(model: Callable[..., Any], batches: list[Inputs], min_calls: int,
             min_seconds: float, clock: Callable[[], float]) -> float:
    """Microseconds per call over one timed stretch of calls (see
    :func:`latency_ms_per_1000`)."""
    calls, elapsed, start = 0, 0.0, clock()
    while calls < min_calls or elapsed < min_seconds:
        model(*batches[calls % len(batches)])
        calls += 1
        elapsed = clock() - start
    return 1e6 * elapsed / calls


def _batches(inputs: Inputs, batch_size: int) -> list[Inputs]:
    count = inputs[0].shape[0] // batch_size if batch_size >= 1 else 0
    if count == 0:
        raise ValueError(f"need batch_size >= 1 and at least {batch_size} rows, "
                         f"got {inputs[0].shape[0]}")
    return [tuple(t[i * batch_size:(i + 1) * batch_size] for t in inputs)
            for i in range(count)]


def sample_inputs(rows: SplitArrays, count: int) -> Inputs:
    """The first ``count`` encoded ``rows`` (repeated from the start when there are fewer) as
    the exported model's input tensors: ``(categorical int64, numeric float32, *sequences
    int64)``, converted as the trainer's loader converts them."""
    if len(rows) == 0:
        raise ValueError("need at least one encoded row")
    picked = rows.map(lambda a: np.asarray(a[np.arange(count) % len(rows)]))
    batch = next(BatchLoader(picked, count).batches(0))
    return (batch.categorical, batch.numeric, *batch.sequences)


# -- serving ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Servable:
    """What one request runs: a group and its objective as
    :func:`~mutualctr.serving.export.write_exported` takes them (on the CPU).

    Attributes:
        group: the models evaluated per request.
        objective: what turns their outputs into the predictions (CETNet: the fusion).
        feature_map: the encoded inputs they take.
    """

    group: ModelGroup
    objective: Objective
    feature_map: FeatureMap

    @property
    def models(self) -> int:
        return len(self.group.models)


def served_run(run: str | Path) -> Servable:
    """The run folder ``run`` as it is exported: every member and the objective. A
    single-model run is its model; a group run is the group served as one network (CETNet)."""
    trained = load_trained(run)
    return Servable(trained.group, trained.objective, trained.feature_map)


def served_member(run: str | Path, name: str) -> Servable:
    """Member ``name`` of the group run ``run`` alone, as
    :func:`~mutualctr.methods.ektf.export_best_student` writes a member for serving: the model
    (a student of a shared embedding with its own copy of the table, as ``model.pt`` stores
    it) under the independent objective. For a distill run, its student without the frozen
    teachers."""
    trained = load_trained(run)
    names = trained.group.names
    if name not in names:
        raise ConfigError(f"run {run} has no member {name!r}; its members are {names}")
    model = trained.group.models[names.index(name)]
    return Servable(ModelGroup([model], [name]), IndependentObjective([name]),
                    trained.feature_map)


def best_student(run: str | Path) -> str:
    """The member of ``run`` with the best validation AUC, not counting its ensemble or
    teacher predictions: the student :func:`~mutualctr.methods.ektf.export_best_student` picks
    (EKTF's best student; a distill run's student)."""
    return students_ranked(read_metrics(run))[0]


def serving_cost(served: Servable, rows: SplitArrays, *,
                 min_seconds: float = MIN_SECONDS) -> ServingCost:
    """What serving ``served`` costs on this CPU, measured on its TorchScript export loaded
    back with ``torch.jit.load``: its parameters, its forward FLOPs per row on the first
    :data:`FLOP_ROWS` of ``rows`` and its latency per 1,000 rows in batches of 1 and 1024
    (:data:`LATENCY_BATCH_SIZES`) on the first 1024 ``rows`` (repeated if fewer), each timed
    stretch at least ``min_seconds`` long, with PyTorch's current number of threads. One
    exported file, so ``single_model``; ``models``: the members evaluated per request."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_exported(served.group, served.objective, served.feature_map,
                              "torchscript", Path(folder) / "model.pt")
        exported = load_torchscript(path)
    inputs = sample_inputs(rows, max(FLOP_ROWS, *LATENCY_BATCH_SIZES))
    batch1, batch1024 = (latency_ms_per_1000(exported, inputs, size, min_seconds=min_seconds)
                         for size in LATENCY_BATCH_SIZES)
    return ServingCost(
        parameters=sum(p.numel() for p in exported.parameters()),
        models=served.models,
        flops_per_row=forward_flops_per_row(exported, tuple(t[:FLOP_ROWS] for t in inputs)),
        ms_per_1000_batch1=batch1,
        ms_per_1000_batch1024=batch1024,
        single_model=True,
    )


def ensemble_cost(costs: Sequence[ServingCost]) -> ServingCost:
    """The averaging ensemble of runs whose costs are ``costs``: every part added up
    (parameters, models, FLOPs, and latencies, since the models run one after the other);
    several exported files, so not ``single_model`` (unless there is only one)."""
    if not costs:
        raise ValueError("an ensemble needs at least one run")
    return ServingCost(
        parameters=sum(c.parameters for c in costs),
        models=sum(c.models for c in costs),
        flops_per_row=math.fsum(c.flops_per_row for c in costs),
        ms_per_1000_batch1=math.fsum(c.ms_per_1000_batch1 for c in costs),
        ms_per_1000_batch1024=math.fsum(c.ms_per_1000_batch1024 for c in costs),
        single_model=len(costs) == 1 and costs[0].single_model,
    )


# -- training ---------------------------------------------------------------------------------

def training_cost(run: str | Path, *, flop_rows: int = FLOP_ROWS) -> TrainingCost:
    """What training the run folder ``run`` cost (one stage of a staged method; :func:`total`
    adds runs up).

    * ``member_epochs``: the epochs run (the lines of ``metrics.jsonl``, so early stopping
      counts) x the members trained: frozen teachers (a distill run's, KD-DAGFM's in its
      distillation stage) are not (:func:`trained_members`).
    * ``seconds``: the sum of ``metrics.jsonl``'s per-epoch ``seconds``, which the trainer
      measures around each epoch's training steps and its validation pass; the run's setup
      and its final scoring of the test split are not in it. A resumed run keeps the records
      of the epochs before its interruption, so they count.
    * ``flops``: per epoch, the training rows x each member's forward FLOPs per row
      (:func:`forward_flops_per_row` on ``flop_rows`` validation rows), times
      :data:`BACKWARD_FACTOR` (3) for a trained member, whose step adds a backward pass, and
      once for a frozen teacher, which only runs forward; times the epochs run.
    """
    run = Path(run)
    history = read_history(run)
    store = EncodedStore.open(read_config(run)["data"])
    inputs = sample_inputs(store.split("valid"), flop_rows)
    trained = trained_members(run, store)
    per_row = math.fsum(
        (BACKWARD_FACTOR if is_trained else 1) * forward_flops_per_row(partial(_logit, model),
                                                                       inputs)
        for model, is_trained in zip(load_trained(run).group.models, trained, strict=True))
    return TrainingCost(
        member_epochs=float(len(history) * sum(trained)),
        seconds=math.fsum(record["seconds"] for record in history),
        flops=per_row * len(store.split("train")) * len(history),
    )


def _logit(model: CTRModel, *inputs: torch.Tensor) -> torch.Tensor:
    return model(as_batch(inputs)).logit


def total(costs: Iterable[TrainingCost]) -> TrainingCost:
    """Several runs' training costs added up (a finetuned group and the runs it starts from;
    an ensemble and its runs)."""
    costs = list(costs)
    return TrainingCost(
        member_epochs=math.fsum(c.member_epochs for c in costs),
        seconds=math.fsum(c.seconds for c in costs),
        flops=math.fsum(c.flops for c in costs),
    )


def trained_members(run: str | Path, store: EncodedStore | None = None) -> list[bool]:
    """Whether the optimizer trained each member of ``run`` (in ``model.json``'s order).

    The method's own ``build`` says which members it freezes, so it is asked: the run's
    method is built from its ``config.yaml`` on PyTorch's ``meta`` device (shapes only, as
    :mod:`mutualctr.training.memory` does), and a member is trained when any of its
    parameters requires a gradient. ``store``: the run's store, opened from its config if not
    given."""
    run = Path(run)
    config = read_config(run)
    if METHOD_KEY not in config:  # e.g. a member written alone by export_best_student
        raise ConfigError(f"{run} is not a training run (its {CONFIG_FILE} names no method)")
    method, build = _build_of(config[METHOD_KEY], run)
    values = {key: value for key, value in config.items() if key != METHOD_KEY}
    store = store if store is not None else EncodedStore.open(values["data"])
    with torch.device("meta"), warnings.catch_warnings():
        # a pretrained member's weights load into meta tensors as a no-op, which torch notes
        warnings.filterwarnings("ignore", "for .*: copying from a non-meta parameter")
        built = build(method.config(values), store)
    return [_requires_grad(model) for model in built.models]


def _requires_grad(model: nn.Module) -> bool:
    return any(p.requires_grad for p in model.parameters())


def _build_of(stored: str, run: Path) -> tuple[Method[Any], Callable[[Any, EncodedStore], Built]]:
    """The method stored in a ``config.yaml`` and its build: a plain method's, or a stage's
    (``<method>_<stage>``) with its sibling stage folders, as the runner builds it."""
    for method in map(get_method, method_names()):
        if method.name == stored and method.build is not None:
            return method, method.build
        folders = {stage.name: run.parent / stage.name for stage in method.stages}
        for stage in method.stages:
            if method.stage_name(stage) == stored:
                return method, partial(stage.build, folders=folders)
    raise ConfigError(f"run {run}: no method {stored!r} builds it")
