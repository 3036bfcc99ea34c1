"""Mutual learning (Yilmaz & Aldemir, 2024): N models trained together, from scratch or as
finetuning of pretrained runs; or, as a control, the same group without the mutual term.

Finetuning pretrained runs (the paper's method; learning rate 7e-4, one epoch by default)::

    mutualctr mutual --data DIR --init RUN1 RUN2 RUN3 RUN4 --out RUN

From scratch (the paper's RQ1; learning rate 1e-3)::

    mutualctr mutual --data DIR --models deepfm dcn pnn fibinet --out RUN

The config names the members (:class:`~mutualctr.methods.members.MemberConfig`): each is a
registry model (from scratch, member i initialised with seed ``train.seed + i``) or a pretrained
run folder (``RUN`` or ``RUN:member``) whose final weights the member starts from. Members of one
architecture and size run as a :class:`~mutualctr.training.groups.batched.BatchedModelGroup`
(same results, faster); mixed groups share one data pipeline through a plain
:class:`~mutualctr.training.groups.base.ModelGroup`. Every member is evaluated each epoch and
restored to its own best epoch on validation (``PER_MEMBER``).

``metrics.json`` gets two keys besides the predictions: ``init`` (each pretrained member's
starting run and its valid/test AUC) and ``relaimp`` (each such member's RelaImp against its
starting run, valid and test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mutualctr.config import Validated, param
from mutualctr.data.store import EncodedStore
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method
from mutualctr.methods.members import (
    MemberConfig,
    build_member,
    member_auc,
    resolve_members,
    split_init,
)
from mutualctr.metrics import relaimp
from mutualctr.models.base import CTRModel
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup, can_batch
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.trainer import Finalize, Metrics, seed_everything

FINETUNE_LR = 7e-4  # the paper's finetuning learning rate (section 3.3)


@dataclass
class MutualConfig(Validated):
    """What ``mutualctr mutual`` runs (stored as the run folder's ``config.yaml``).

    Attributes:
        data: encoded store folder, from `mutualctr data prepare`.
        members: the group: registry models trained from scratch or pretrained runs
            finetuned; members starting from runs get train.lr 7e-4 unless it is given.
        objective: mutual, or independent: the control, the same group without the mutual
            term.
        weight: w, the mutual term's weight (Yilmaz eq. 3).
        divergence: mse (the paper) or kl (the original deep mutual learning).
        batched: stack the parameters of members of one architecture (results unchanged).
        train: the trainer's settings.
    """

    data: str = ""
    members: list[MemberConfig] = field(default_factory=list)
    objective: Literal["mutual", "independent"] = "mutual"
    weight: float = param(1.0, ge=0.0)
    divergence: Literal["mse", "kl"] = "mse"
    batched: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)


def finetuning_lr(given: Mapping[str, Any]) -> dict[str, Any]:
    """The paper's finetuning learning rate (section 3.3) when a member starts from a run."""
    members = given.get("members") or []
    if any(isinstance(m, Mapping) and m.get("init") for m in members):
        return {"train": {"lr": FINETUNE_LR}}
    return {}


def resolve(config: MutualConfig) -> MutualConfig:
    """Every member's name, model and hyperparameters filled in."""
    minimum = 2 if config.objective == "mutual" else 1
    members = resolve_members(config.members, minimum, config.objective)
    return dataclasses.replace(config, members=members)


def build_members(config: MutualConfig, store: EncodedStore) -> list[CTRModel]:
    """The members' models: seeded fresh initialisations or the pretrained runs' weights."""
    models = []
    for i, m in enumerate(config.members):
        seed_everything(config.train.seed + i)
        models.append(build_member(m, store.feature_map))
    return models


def build_group(models: list[CTRModel], names: list[str], batched: bool) -> torch.nn.Module:
    """A batched group when every member shares one architecture and size, else a plain one."""
    same_config = all(m.config == models[0].config for m in models)
    if batched and same_config and can_batch(models):
        return BatchedModelGroup(models, names)
    return ModelGroup(models, names)


def build(config: MutualConfig, store: EncodedStore) -> Built:
    models = build_members(config, store)
    names = [m.name for m in config.members]
    params: dict[str, Any] = {}
    if config.objective == "mutual":
        params = {"weight": config.weight, "divergence": config.divergence}
        objective = MutualObjective(names, **params)
    else:
        objective = IndependentObjective(names)
    return Built(build_group(models, names, config.batched), objective, params, models, names)


def compare_with_init(config: MutualConfig, store: EncodedStore, built: Built) -> Finalize:
    """``init`` (starting AUCs) and ``relaimp`` (against them) of every pretrained member."""

    def finalize(metrics: Metrics, predictions: dict[str, np.ndarray]) -> Metrics:
        init, rela = {}, {}
        for m in config.members:
            if not m.init:
                continue
            root, member = split_init(m.init)
            start = member_auc(root, member)
            init[m.name] = {"run": str(root), **start}
            rela[m.name] = {split: relaimp(metrics[split][m.name]["auc"], start[split])
                            for split in start if split in metrics}
        return {**metrics, "init": init, "relaimp": rela} if init else metrics

    return finalize


def _absolute(path: str) -> str:
    return str(Path(path).resolve())


METHOD = Method(
    "mutual", MutualConfig, build, resolve, compare_with_init,
    help="train N models together by mutual learning (from scratch or as finetuning)",
    description=__doc__.split("\n\n")[0],
    flags=(
        Flag("--init", "members", nargs="+", metavar="RUN", exclusive="members",
             help="pretrained run folders to finetune, RUN or RUN:member (alias of `members: "
                  "[{init: RUN}, ...]`; implies train.lr=7e-4 unless --lr or --set train.lr "
                  "is given)",
             value=lambda runs, _: [{"init": _absolute(r)} for r in runs]),
        Flag("--models", "members", nargs="+", metavar="MODEL", exclusive="members",
             help="registry models trained from scratch (alias of `members: [{model: MODEL}, "
                  "...]`)",
             value=lambda models, _: [{"model": m} for m in models]),
        Flag("--weight", "weight"),
        Flag("--divergence", "divergence"),
        Flag("--independent", "objective", const="independent",
             help="control: the same group without the mutual term (alias of `objective: "
                  "independent`)"),
        Flag("--lr", "train.lr", type=float),
    ),
    presets=finetuning_lr,
)
