"""How long a comparison will take, before it runs (``mutualctr compare --dry-run``).

A short probe trains each model for a few batches of the store's training split, as the
trainer would (the same precision, Adam, the training batch size), and measures its rows per
second. A run's time is then its member-epochs times the training rows over that rate: at
most ``train.epochs`` epochs for what early stopping may stop sooner (so an upper bound), the
finetuning epochs for the finetuning groups, and a frozen teacher's forward pass as a third of
a training step. Evaluation passes are not counted.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.experiments.engine import Job
from mutualctr.models.registry import build_model
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.precision import resolve_precision, run_group

TEACHER_SHARE = 1.0 / 3.0  # a forward pass without its backward and update


def rows_per_second(model: str, store: EncodedStore, train: TrainConfig, steps: int = 8
                    ) -> float:
    """Training rows per second of ``model`` alone on ``store`` (``steps`` timed steps after
    two of warm-up, on the CPU, with ``train``'s batch size and precision; a small split is
    gone through again)."""
    device = torch.device("cpu")
    net = build_model(model, store.feature_map).train()
    group = ModelGroup([net], [model])
    optimizer = torch.optim.Adam(net.parameters(), lr=train.lr)
    dtype = resolve_precision(train.amp, device, {model})
    loader = BatchLoader(store.split("train"), train.batch_size)
    batches = (batch for epoch in itertools.count() for batch in loader.batches(epoch))
    rows, start = 0, 0.0
    for step, batch in zip(range(steps + 2), batches, strict=False):
        if step == 2:
            rows, start = 0, time.perf_counter()
        output = run_group(group, batch, dtype)[0]
        loss = F.binary_cross_entropy_with_logits(output.logit, batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rows += len(batch.label)
    return rows / (time.perf_counter() - start)


def job_seconds(job: Job, rates: Mapping[str, float], train_rows: int) -> float:
    """The estimated seconds of one job: its trained models' epochs at their rates, its frozen
    teachers' at :data:`TEACHER_SHARE` of theirs (the models from the job's labels:
    ``trained`` and ``teachers``, as :mod:`mutualctr.comparison.plan` sets them)."""
    per_epoch = sum(train_rows / rates[m] for m in job.labels["trained"])
    per_epoch += TEACHER_SHARE * sum(train_rows / rates[m] for m in job.labels["teachers"])
    train = job.config.train
    seconds = train.epochs * per_epoch
    # a budget ends a run after the epoch that crosses it
    return min(seconds, train.max_seconds + per_epoch) if train.max_seconds else seconds


def estimate(jobs: Sequence[Job], store: EncodedStore, train: TrainConfig
             ) -> tuple[dict[str, float], list[float]]:
    """The probe's rows per second by model, and each job's estimated seconds."""
    models = sorted({m for job in jobs for key in ("trained", "teachers")
                     for m in job.labels[key]})
    rates = {m: rows_per_second(m, store, train) for m in models}
    train_rows = len(store.split("train"))
    return rates, [job_seconds(job, rates, train_rows) for job in jobs]
