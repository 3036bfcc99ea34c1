"""The training loop, shared by every objective: it never knows which one it runs.

:func:`fit` trains a group of models under an objective on encoded splits: Adam with L2 as
per-group weight decay, a learning-rate schedule, gradient clipping, evaluation on the
validation split after every epoch (AUC and logloss of every named prediction; the final
metrics add gAUC by user where the store has a user field), early stopping
with the best weights restored (jointly, or per member), checkpoints every epoch and every K
steps, exact resumption, a guard against non-finite losses and gradients, and DDP when launched
by ``torchrun``. With a run folder it writes ``metrics.jsonl``, ``metrics.json``, the test
predictions and the final weights (see :mod:`mutualctr.runfolders.folder`).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from mutualctr import metrics as metric_fns
from mutualctr.data.batch import Batch
from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import SplitArrays
from mutualctr.distributed import ddp
from mutualctr.distributed.ddp import DistInfo
from mutualctr.errors import ConfigError, DataError, MutualCTRError
from mutualctr.runfolders import checkpoint
from mutualctr.runfolders.folder import RunFolder
from mutualctr.training import tracking
from mutualctr.training.allocator import retain_freed_memory
from mutualctr.training.config import TrainConfig
from mutualctr.training.objectives.auxiliary import members_extra_loss
from mutualctr.training.objectives.base import Objective
from mutualctr.training.optimizers import (
    build_optimizer,
    clip_gradients_,
    coalesce_gradients_,
    gradient_values,
)
from mutualctr.training.precision import model_kinds, precision_name, resolve_precision, run_group
from mutualctr.training.progress import Progress
from mutualctr.training.selection import Selector
from mutualctr.training.users import user_ids

CHECKPOINT_FORMAT = 1
Metrics = dict[str, Any]  # {"valid": {prediction: {"auc", "logloss", ...}}, "test": ...}
Finalize = Callable[[Metrics, dict[str, np.ndarray]], Metrics]
OnEpoch = Callable[[dict[str, Any]], None]  # called with each epoch's metrics.jsonl record


class NonFiniteError(MutualCTRError):
    """A loss or gradient became NaN or infinite; training stopped before the bad update."""


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        metrics: ``{"valid": {prediction: metrics}, "test": ...}`` as written to metrics.json
            (``test`` only when a test split was given), with what ``finalize`` added.
        history: one record per epoch, as in metrics.jsonl.
        best_epochs: 1-based best epoch per monitored name.
        predictions: test predictions by name (empty without a test split).
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    best_epochs: dict[str, int]
    predictions: dict[str, np.ndarray]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (call before building models)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` picks CUDA when available; under DDP each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MutualCTRError(f"device {name!r} was asked for but CUDA is not available")
        if info is not None and info.enabled:
            device = torch.device("cuda", info.local_rank)
    return device


class _Step(nn.Module):
    """Group + objective as one module, so DDP sees every trainable parameter at once. The
    group runs in ``dtype`` (autocast), the objective on its float32 outputs."""

    def __init__(self, group: nn.Module, objective: Objective, dtype: torch.dtype) -> None:
        super().__init__()
        self.group, self.objective, self.dtype = group, objective, dtype

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any], list[torch.Tensor]]:
        outputs = run_group(self.group, batch, self.dtype)
        out = self.objective(outputs, batch)
        extra = members_extra_loss(outputs, self.objective.member_names, out.parts)
        loss = out.loss if extra is None else out.loss + extra
        return loss, out.parts, [o.logit for o in outputs]


class Trainer:
    """Trains ``group`` under ``objective``; see :func:`fit` for the arguments."""

    def __init__(
        self, group: nn.Module, objective: Objective, config: TrainConfig,
        run: RunFolder | None = None, dist: DistInfo | None = None, log: TextIO | None = None,
        finalize: Finalize | None = None, on_epoch: OnEpoch | None = None,
        user_column: int | None = None,
    ) -> None:
        self.config = config
        self.finalize = finalize
        self.user_column = user_column
        self.on_epoch = on_epoch
        self.tracker: tracking.Tracker = tracking.NullTracker()  # fit opens the configured one
        self.dist = dist or DistInfo()
        if config.optimizer == "lazy_adam" and self.dist.enabled:
            raise ConfigError(
                "train.optimizer lazy_adam runs in one process: its sparse embedding gradients "
                "are not reduced across ranks. Under torchrun use train.optimizer adam (with "
                "replicated or sharded tables)")
        self.run = run if self.dist.is_main else None
        self.log = log if log is not None else sys.stderr
        self.device = resolve_device(config.device, self.dist)
        if self.device.type == "cpu":
            retain_freed_memory()  # reuse each step's large blocks (see training/allocator.py)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.group = group.to(self.device)
        self.objective = objective.to(self.device)
        self.names = list(getattr(group, "names", objective.member_names))
        self.dtype = resolve_precision(config.amp, self.device, model_kinds(self.group))
        self.step_module = _Step(self.group, self.objective, self.dtype)
        self.train_module = ddp.parallelize(self.step_module, config.sharding, self.dist,
                                                    self.device)
        self.optimizer = ddp.with_sharded_state(build_optimizer(self.step_module, config))
        self.base_lr = config.lr
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="max" if config.early_stopping.metric == "auc" else "min",
                factor=config.schedule.factor, patience=config.schedule.patience,
                min_lr=config.schedule.min_lr,
            )
            if config.schedule.name == "plateau" else None
        )
        self.selector = Selector(
            self.group, self.objective, config.early_stopping.metric,
            config.early_stopping.patience,
        )
        self.epoch = 0  # epochs finished
        self.step_in_epoch = 0  # batches of the current epoch done
        self.global_step = 0
        self.loss_sum = self._zero_loss_sum()
        self.loss_rows = 0
        self.history: list[dict[str, Any]] = []
        self.stopped = False

    # -- output -------------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            print(message, file=self.log, flush=True)

    # -- checkpoints --------------------------------------------------------------------------

    def state_dict(self, rng_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything resumption needs; ``rng_states``: one per rank (default: this process's)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "group": self.group.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
            "rng": rng_states if rng_states is not None else [checkpoint.rng_state()],
            "selector": self.selector.state_dict(),
            # the epoch's loss so far, summed over every rank (rank 0 resumes with it)
            **dict(zip(("loss_sum", "loss_rows"), self._epoch_loss(), strict=True)),
            "history": self.history,
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise checkpoint.CheckpointError(
                f"checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}"
            )
        self.group.load_state_dict(state["group"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        self.selector.load_state_dict(state["selector"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.loss_sum, self.loss_rows = state["loss_sum"].to(self.device), state["loss_rows"]
        if not self.dist.is_main:  # rank 0 holds every rank's part of the epoch's loss
            self.loss_sum, self.loss_rows = self._zero_loss_sum(), 0
        self.history, self.stopped = list(state["history"]), state["stopped"]
        rngs = state["rng"]
        same_world = len(rngs) == self.dist.world_size
        checkpoint.set_rng_state(rngs[self.dist.rank] if same_world else rngs[0])

    def save_checkpoint(self, best: bool = False) -> None:
        """Called on every rank at the same steps: each rank's RNG state is kept. ``best``: the
        epoch just ended is the best so far (its checkpoint outlives ``keep_checkpoints``)."""
        rng_states = ddp.gather_objects(checkpoint.rng_state(), self.dist)
        state = self.state_dict(rng_states)  # on every rank: sharded tables gather collectively
        if self.run is None:
            return
        where = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                 "global_step": self.global_step}
        self.run.write_checkpoint(state, where, best=best,
                                  keep=self.config.keep_checkpoints)

    def resume(self) -> bool:
        """Load the run folder's newest intact checkpoint, if any; warn about damaged newer
        ones. Returns whether one was loaded."""
        restored = None if self.run is None else self.run.checkpoints.load_newest_intact()
        if not ddp.any_rank(restored is not None, self.dist, self.device):
            return False
        state, path = None, None  # other ranks get rank 0's state
        if restored is not None:
            state, path = restored.state, restored.path
            for note in restored.notes:
                self._say(f"warning: {note}")
            for damaged in restored.damaged:
                self._say(f"warning: {damaged}; falling back to {path}")
        if self.dist.enabled:
            holder = [state]
            torch.distributed.broadcast_object_list(holder, src=0)
            state = holder[0]
        assert state is not None
        self.load_state_dict(state)
        if not self.stopped and self.epoch < self.config.epochs:
            self._say(
                f"resuming from {path or 'rank 0 checkpoint'}: epoch {self.epoch + 1}, "
                f"batch {self.step_in_epoch} (global step {self.global_step})"
            )
        return True

    # -- training -----------------------------------------------------------------------------

    def _set_lr(self, steps_per_epoch: int) -> None:
        schedule = self.config.schedule
        if schedule.name != "exponential":
            return
        progress = self.global_step / (schedule.decay_epochs * steps_per_epoch)
        lr = self.base_lr * schedule.decay_to ** progress
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _non_finite_message(
        self, loss: torch.Tensor, parts: dict[str, Any], logits: list[torch.Tensor]
    ) -> str:
        where = (f"epoch {self.epoch + 1}, batch {self.step_in_epoch + 1} "
                 f"(global step {self.global_step + 1})")
        culprits = [
            f"model {name!r} produced non-finite logits"
            for name, logit in zip(self.names, logits, strict=False)
            if not torch.isfinite(logit).all()
        ]
        culprits += [
            f"loss term {key!r} = {float(value)}" for key, value in parts.items()
            if not math.isfinite(float(value))
        ]
        for prefix, module in (("model", self.group), ("objective", self.objective)):
            for name, p in module.named_parameters():
                if p.grad is not None and not torch.isfinite(*gradient_values([p.grad])).all():
                    culprits.append(
                        f"{prefix} parameter {self._member_param(name)!r} has a non-finite "
                        "gradient"
                    )
                    break
        kind = "loss" if not torch.isfinite(loss) else "gradient"
        latest = None if self.run is None else self.run.checkpoints.latest()
        last = ("no checkpoint was written yet" if latest is None
                else f"the last good checkpoint {latest} is intact")
        detail = "; ".join(culprits) if culprits else "on another rank"
        return (f"non-finite {kind} at {where}: {detail}. Training stopped before this update; "
                f"{last}. Lower the learning rate, enable grad_clip or check the input data.")

    def _member_param(self, name: str) -> str:
        """``models.1.mlp.0.weight`` -> ``dcn: mlp.0.weight`` (the member's name)."""
        head, index, rest = [*name.split(".", 2), "", ""][:3]
        if head == "models" and index.isdigit() and int(index) < len(self.names):
            return f"{self.names[int(index)]}: {rest}"
        return name

    def _epoch_loss(self) -> tuple[torch.Tensor, int]:
        """The epoch's summed training loss and its rows, over every rank (collective): under
        DDP the rows each rank trained on, so a last partial batch counts its own rows."""
        local = torch.stack([self.loss_sum, torch.tensor(float(self.loss_rows),
                                                         dtype=torch.float64,
                                                         device=self.loss_sum.device)])
        total = ddp.summed(local, self.dist).cpu()
        return total[0], int(total[1])

    def _zero_loss_sum(self) -> torch.Tensor:
        """The epoch's summed training loss, kept where the loss is computed."""
        return torch.zeros((), dtype=torch.float64, device=self.device)

    def _train_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        loss, parts, logits = self.train_module(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.step_module.parameters() if p.grad is not None]
        coalesce_gradients_(params)
        norm = ddp.grad_norm(params, self.dist)
        # the step's one host sync, kept on purpose: a non-finite loss or gradient must stop the
        # run before the optimizer writes it into the weights
        bad = not (torch.isfinite(loss) and torch.isfinite(norm))
        if ddp.any_rank(bad, self.dist, self.device):
            raise NonFiniteError(self._non_finite_message(loss.detach(), parts, logits))
        if self.config.grad_clip > 0:
            clip_gradients_(params, self.config.grad_clip, norm)
        self.optimizer.step()
        return loss.detach(), parts

    def _train_epoch(self, loader: BatchLoader) -> Progress:
        epochs = self.config.epochs
        progress = Progress(len(loader), self.epoch + 1, epochs, self.log, self.dist.is_main)
        every = self.config.checkpoint_every_steps
        self.step_module.train()
        for batch in loader.batches(self.epoch, start=self.step_in_epoch):
            self._set_lr(len(loader))
            loss, parts = self._train_step(batch.to(self.device, non_blocking=True))
            self.loss_sum += loss.double() * len(batch)  # on the device: no sync per step
            self.loss_rows += len(batch)
            self.step_in_epoch += 1
            self.global_step += 1
            shown = float(loss) if self.step_in_epoch % self.config.log_every_steps == 0 else None
            progress.update(self.step_in_epoch, len(batch), shown)
            if shown is not None:
                lr = self.optimizer.param_groups[0]["lr"]
                rate = progress.rows_per_second * self.dist.world_size
                self.tracker.log(tracking.step_scalars(shown, lr, rate, parts), self.global_step)
            if every and self.global_step % every == 0 and self.step_in_epoch < len(loader):
                self.save_checkpoint()
        progress.close()
        return progress

    # -- evaluation ---------------------------------------------------------------------------

    def predict(self, split: SplitArrays) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every named prediction and the labels of ``split``, in row order (all ranks)."""
        part = ddp.row_slice(split, self.dist)
        if len(part) == 0:
            raise DataError("cannot evaluate on an empty split (or fewer rows than processes)")
        batch_size = ddp.eval_batch_size(len(split), self.config.eval_batch_size,
                                                 self.dist)
        local = predict_split(self.group, self.objective, part, batch_size, self.device)
        predictions = {
            name: ddp.gather(p, self.dist, self.device) for name, p in local.items()
        }
        labels = ddp.gather(np.asarray(part.label, dtype=np.float32), self.dist,
                                    self.device)
        return predictions, labels

    def evaluate(self, split: SplitArrays) -> dict[str, dict[str, float]]:
        """AUC and logloss of every named prediction on ``split``."""
        predictions, labels = self.predict(split)
        return {name: metric_fns.binary_metrics(labels, p) for name, p in predictions.items()}

    def final_metrics(self, split: SplitArrays) -> tuple[dict[str, dict[str, float]],
                                                          dict[str, np.ndarray], np.ndarray]:
        """What ``metrics.json`` holds of ``split`` (:func:`split_metrics`), the predictions
        and the labels."""
        predictions, labels = self.predict(split)
        groups = user_ids(split, self.user_column)
        return split_metrics(labels, predictions, groups), predictions, labels

    # -- the loop -----------------------------------------------------------------------------

    def fit(
        self, train: SplitArrays, valid: SplitArrays, test: SplitArrays | None = None,
    ) -> FitResult:
        config = self.config
        train = _first_rows(train, config.max_train_rows)
        if len(train) == 0:
            raise DataError("the training split is empty")
        loader = BatchLoader(train, config.batch_size, shuffle=True, seed=config.seed,
                             rank=self.dist.rank, world_size=self.dist.world_size,
                             pin_memory=self.device.type == "cuda")
        if len(loader) == 0:
            raise DataError(f"the training split has {len(train)} rows: fewer than one batch "
                            f"per process (batch_size {config.batch_size})")
        if not self.resume():
            torch.manual_seed(config.seed + self.dist.rank)
            self.save_checkpoint()
        if self.stopped or self.epoch >= config.epochs:
            self._say("training already finished in this run folder; evaluating its best weights")
        self.tracker = tracking.open_tracker(config.tracking, self.run, self.global_step)
        try:
            while not self.stopped and self.epoch < config.epochs:
                self._run_epoch(loader, valid)
            if config.early_stopping.restore_best:
                never = self.selector.restore()
                if never:
                    self._say(f"warning: {never} never improved on valid; keeping last weights")
            return self._finish(valid, test)
        finally:
            self.tracker.close()  # after metrics.json: MLflow gets the finished run's files

    def _run_epoch(self, loader: BatchLoader, valid: SplitArrays) -> None:
        start = time.perf_counter()
        progress = self._train_epoch(loader)
        ddp.broadcast_buffers(self.step_module, self.dist)
        loss_sum, rows_seen = self._epoch_loss()
        train_loss = float(loss_sum) / max(rows_seen, 1)
        valid_metrics = self.evaluate(valid)
        self.epoch += 1
        self.step_in_epoch = 0
        self.loss_sum, self.loss_rows = self._zero_loss_sum(), 0
        self.selector.update(valid_metrics, self.epoch)
        if self.plateau is not None:
            self.plateau.step(self.selector.monitored_value(valid_metrics))
        self.stopped = self.selector.should_stop
        seconds = time.perf_counter() - start
        spent = seconds + sum(r["seconds"] for r in self.history)
        out_of_time = 0 < self.config.max_seconds < spent
        self.stopped = self.stopped or out_of_time
        record = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "train_rows": rows_seen,  # over every rank
            "valid": valid_metrics,
            "best_epoch": self.selector.best_epochs(),
            "rows_per_second": progress.rows_per_second * self.dist.world_size,
            "seconds": seconds,
            "precision": precision_name(self.dtype),  # of the training steps
        }
        self.history.append(record)
        if self.run is not None:
            self.run.write_history(self.history)
        self.tracker.log(tracking.epoch_scalars(record), self.global_step)
        self.save_checkpoint(best=self.epoch in self.selector.best_epochs().values())
        shown = "  ".join(
            f"{name} auc {m['auc']:.5f} logloss {m['logloss']:.5f}"
            for name, m in valid_metrics.items()
        )
        self._say(
            f"epoch {self.epoch}/{self.config.epochs}: train loss {train_loss:.5f} "
            f"({rows_seen} rows, {record['rows_per_second']:.0f} rows/s) | valid {shown}"
            + (" | time budget spent" if out_of_time else " | early stop" if self.stopped
               else "")
        )
        if self.on_epoch is not None:
            self.on_epoch(record)

    def _finish(self, valid: SplitArrays, test: SplitArrays | None) -> FitResult:
        result: Metrics = {"valid": self.final_metrics(valid)[0]}
        test_predictions: dict[str, np.ndarray] = {}
        if test is not None:
            result["test"], test_predictions, labels = self.final_metrics(test)
        if self.finalize is not None:
            result = self.finalize(result, test_predictions)
        weights = self.final_weights()  # on every rank: sharded tables gather collectively
        if self.run is not None:
            if test is not None:
                self.run.write_predictions(labels, test_predictions)
            self.run.write_weights(weights)
            self.run.write_metrics(result)  # last: its presence marks the run finished
        return FitResult(result, self.history, self.selector.best_epochs(), test_predictions)

    def final_weights(self) -> dict[str, Any]:
        """``{"members": {name: state_dict}, "objective": state_dict}`` (see runfolder)."""
        member_state = getattr(self.group, "member_state_dict", None)
        members = (
            {name: member_state(i) for i, name in enumerate(self.names)}
            if member_state is not None else {}
        )
        return {"members": members, "group": self.group.state_dict(),
                "objective": self.objective.state_dict()}


def split_metrics(
    labels: np.ndarray, predictions: dict[str, np.ndarray], groups: np.ndarray | None,
) -> dict[str, dict[str, float]]:
    """AUC and logloss of every named prediction and, given the rows' user ids ``groups``,
    its gAUC under both weightings (:func:`mutualctr.metrics.gaucs`: one sort for both)."""
    return {name: {**metric_fns.binary_metrics(labels, p),
                   **({} if groups is None else metric_fns.gaucs(labels, p, groups))}
            for name, p in predictions.items()}


def _first_rows(split: SplitArrays, rows: int) -> SplitArrays:
    """The first ``rows`` rows of ``split`` (all of them when ``rows`` is 0)."""
    if rows <= 0 or rows >= len(split):
        return split
    return split.map(lambda a: a[:rows])


@torch.inference_mode()
def predict_split(
    group: nn.Module, objective: Objective, split: SplitArrays, batch_size: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """Every named prediction of ``objective`` over ``split``, in row order (eval mode), in
    float32 whatever precision trained the models (``train.amp`` applies to training steps),
    so that ``metrics.json`` is what ``evaluate``, ``predict`` and ``export`` reproduce."""
    group.eval()
    objective.eval()
    # one output array per prediction, filled batch by batch: with the trainer's allocator
    # setting (training/allocator.py), small arrays kept per batch between the batches' large
    # freed blocks fragmented the heap, which grew by about 7 MiB per batch of 16,384 rows
    out: dict[str, np.ndarray] = {}
    loader = BatchLoader(split, batch_size, pin_memory=device.type == "cuda")
    start = 0
    for batch in loader.batches(0):
        preds = objective.predict(group(batch.to(device, non_blocking=True)))
        for name, p in preds.items():
            values = out.setdefault(name, np.empty(len(split), dtype=np.float32))
            values[start : start + len(batch)] = p.float().cpu().numpy()
        start += len(batch)
    return out


def fit(
    group: nn.Module, objective: Objective, train: SplitArrays, valid: SplitArrays,
    config: TrainConfig, run: RunFolder | None = None, test: SplitArrays | None = None,
    dist: DistInfo | None = None, log: TextIO | None = None, finalize: Finalize | None = None,
    on_epoch: OnEpoch | None = None, user_column: int | None = None,
) -> FitResult:
    """Train ``group`` under ``objective`` and evaluate the restored best weights.

    Args:
        group: a :class:`~mutualctr.training.groups.base.ModelGroup` (or the batched variant): N
            models, ``forward(batch) -> list[ModelOutput]``. Initialise it (e.g. from a
            pretrained run with :func:`~mutualctr.runfolders.folder.read_weights`) before.
        objective: loss and named predictions (its parameters are trained too).
        train, valid, test: encoded splits; batches are drawn by the trainer (shuffled with
            ``config.seed``, sharded by rank under DDP).
        config: optimisation, schedule, early stopping, checkpoints.
        run: the run folder to checkpoint into and resume from; ``None`` trains in memory.
        dist: from :func:`mutualctr.distributed.ddp.init` (single process when None).
        log: where progress and epoch summaries go (stderr by default).
        finalize: turns the final metrics and the test predictions into what metrics.json
            holds (a method's additions, e.g. RelaImp against the starting runs).
        on_epoch: called after every epoch with its ``metrics.jsonl`` record (on every rank);
            an exception it raises stops training (``mutualctr tune`` prunes trials so).
        user_column: the column of the splits' categorical arrays holding the user ids
            (:func:`mutualctr.training.users.user_column`): the final metrics of the valid and
            test splits then add gAUC under both weightings; None: no gAUC.
    """
    trainer = Trainer(group, objective, config, run, dist, log, finalize, on_epoch,
                      user_column)
    return trainer.fit(train, valid, test)

