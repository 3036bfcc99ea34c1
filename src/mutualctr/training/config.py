"""What the trainer needs besides the models, the objective and the data: ``train:`` in every
method's config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mutualctr.config import Validated, param


@dataclass
class ScheduleConfig(Validated):
    """Learning-rate schedule.

    * ``none``: constant.
    * ``exponential``: multiplied every optimiser step so it reaches ``decay_to`` times the
      initial rate after ``decay_epochs`` epochs, and keeps decaying at the same rate after
      (the mutual-learning paper: to 1/10 over 3 epochs).
    * ``plateau``: FuxiCTR's default, ``ReduceLROnPlateau`` on the early-stopping metric after
      each epoch's evaluation: multiply by ``factor`` after ``patience`` epochs without
      improvement, never below ``min_lr``.
    """

    name: Literal["none", "exponential", "plateau"] = "plateau"
    decay_to: float = param(0.1, gt=0.0, le=1.0)
    decay_epochs: float = param(3.0, gt=0.0)
    factor: float = param(0.1, gt=0.0, lt=1.0)
    patience: int = param(1, ge=0)
    min_lr: float = param(1e-6, ge=0.0)


@dataclass
class EarlyStoppingConfig(Validated):
    """Stop when ``metric`` on the validation split has not improved for ``patience`` epochs;
    then (``restore_best``) reload the best epoch's weights."""

    metric: Literal["auc", "logloss"] = "auc"
    patience: int = param(2, ge=1)
    restore_best: bool = True


@dataclass
class TrainConfig(Validated):
    """Everything the trainer needs besides the models, the objective and the data.

    L2 (``embedding_l2`` on embedding tables, ``net_l2`` on every other weight and bias) is the
    whole-parameter form ``lambda/2 * ||W||^2``, applied as Adam's ``weight_decay`` per
    parameter group: see docs/training.md for why.
    """

    epochs: int = param(1, ge=1)
    batch_size: int = param(4096, ge=1)
    eval_batch_size: int = param(16384, ge=1)
    # adam: every parameter every step; lazy_adam: embedding rows only when a batch looks them
    # up (training/optimizers.py)
    optimizer: Literal["adam", "lazy_adam"] = "adam"
    lr: float = param(1e-3, gt=0.0)
    embedding_l2: float = param(1e-5, ge=0.0)
    net_l2: float = param(1e-7, ge=0.0)
    grad_clip: float = param(10.0, ge=0.0)  # max global gradient norm; 0 = no clipping
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    seed: int = param(2024, ge=0)
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    # bfloat16 autocast of forward passes: auto (where the hardware has it), true, false
    amp: bool | Literal["auto"] = "auto"
    num_threads: int = param(0, ge=0)  # torch intra-op threads; 0 = leave torch's default
    checkpoint_every_steps: int = param(0, ge=0)  # 0 = only at the end of every epoch
    keep_checkpoints: int = param(2, ge=1)  # newest checkpoints kept (the best one besides)
    max_train_rows: int = param(0, ge=0)  # train on the first N rows only; 0 = all of them
    # a wall-clock budget: stop after the first epoch that ends with more than this many
    # seconds of epochs (training and validation) behind the run; 0 = none
    max_seconds: float = param(0.0, ge=0.0)
    log_every_steps: int = param(50, ge=1)  # progress line and tracked step scalars
    tracking: Literal["none", "tensorboard", "mlflow"] = "none"  # training/tracking.py
    # embedding tables under torchrun: replicated (DDP) or sharded by TorchRec (sharding.py)
    sharding: Literal["none", "table_wise", "row_wise"] = "none"
    # gAUC's groups in metrics.json: auto = the store's user field (training/users.py), "" = no
    # gAUC, or a categorical field
    user_field: str = "auto"

    def __post_init__(self) -> None:
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
