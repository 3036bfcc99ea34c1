"""What a comparison measures: one outcome per way of training (a row of the table) and seed.

A comparison (:mod:`mutualctr.comparison`) trains every applicable method on the same store with
``S`` seeds; each seed is a full, independent replicate. An :class:`Outcome` is one row at one
seed: the AUC of what would be deployed (one model alone, the averaging ensemble, a mutual
member, a distilled or EKTF student, CETNet's fused network), what training it cost and what
serving it costs. Rows are compared over seeds, paired by seed; co-trained members are never
separate samples: a mutual group's two members are two rows, each with one value per seed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingCost:
    """What producing a row's model(s) cost, as actually spent.

    Attributes:
        member_epochs: epochs run, summed over the models trained (a mutual group of two for
            one epoch is 2), including the runs it starts from (finetuning counts its
            pretraining; an ensemble or a distilled student counts its teachers).
        seconds: wall time of those runs, summed.
        flops: an estimate of the training floating-point operations: 3 x the forward FLOPs per
            row x the training rows x each model's epochs (forward and backward).
    """

    member_epochs: float
    seconds: float
    flops: float


@dataclass(frozen=True)
class ServingCost:
    """What serving a row costs, measured on this CPU.

    Attributes:
        parameters: parameters of everything needed at inference.
        models: models evaluated per request (an ensemble of two: 2; CETNet: its members).
        flops_per_row: forward FLOPs per row (multiply-adds count 2).
        ms_per_1000_batch1: latency per 1,000 rows scored one at a time, in milliseconds.
        ms_per_1000_batch1024: latency per 1,000 rows scored in batches of 1024.
        single_model: deployable as one model (one exported file, one forward pass).
    """

    parameters: int
    models: int
    flops_per_row: float
    ms_per_1000_batch1: float
    ms_per_1000_batch1024: float
    single_model: bool


@dataclass(frozen=True)
class Outcome:
    """One row of the comparison at one seed.

    Attributes:
        row: the row's label, e.g. ``alone deepfm``, ``ensemble``, ``mutual finetune deepfm``.
        method: the registered method that trained it (``train``, ``mutual`` ...; ``ensemble``
            for the averaging ensemble, which trains nothing).
        seed: the replicate.
        valid_auc: validation AUC (what picks the best single model).
        test_auc: test AUC, the test split touched once, at the end.
        test_logloss: test logloss.
        control: the row this one is compared with besides the best single model (the same
            extra training without peers), or empty.
        training: its training cost.
        serving: its serving cost.
    """

    row: str
    method: str
    seed: int
    valid_auc: float
    test_auc: float
    test_logloss: float
    control: str
    training: TrainingCost
    serving: ServingCost
