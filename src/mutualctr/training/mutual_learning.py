"""Train a group of N models together: mutual learning from scratch or as finetuning of
pretrained runs (Yilmaz & Aldemir, 2024), or, as a control, the same group trained
independently.

A :class:`GroupRunConfig` names the members: each is a registry model (from scratch, member i
initialised with seed ``train.seed + i``) or a pretrained run folder (``RUN`` or ``RUN:member``
for a run holding several models) whose final weights the member starts from. Members of one
architecture and size run as a :class:`~mutualctr.training.batched_group.BatchedModelGroup`
(same results, faster); mixed groups share one data pipeline through a plain
:class:`~mutualctr.training.group.ModelGroup`. Every member is evaluated each epoch and
restored to its own best epoch on validation (``PER_MEMBER``).

The run folder is the trainer's, plus two keys in ``metrics.json``: ``init`` (each pretrained
member's starting run and its valid/test AUC) and ``relaimp`` (each such member's RelaImp
against its starting run, valid and test).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import torch

from mutualctr.config import TrainConfig, param, to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.metrics import relaimp
from mutualctr.models.base import CTRModel
from mutualctr.models.registry import build_model, model_config
from mutualctr.training.batched_group import BatchedModelGroup, can_batch
from mutualctr.training.group import ModelGroup
from mutualctr.training.objective import Objective
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.restore import model_spec
from mutualctr.training.runfolder import (
    METRICS_FILE,
    RunFolder,
    read_model_spec,
    read_weights,
    write_json_atomic,
)
from mutualctr.training.trainer import FitResult, fit, seed_everything

FINETUNE_LR = 7e-4  # the paper's finetuning learning rate


@dataclass
class MemberConfig:
    """One member: a registry ``model`` (with ``model_config`` overrides) or an ``init`` run."""

    name: str = ""
    model: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    init: str = ""  # pretrained run folder, "RUN" or "RUN:member"; "" = from scratch


@dataclass
class GroupRunConfig:
    """What ``mutualctr mutual`` runs (stored as the run folder's ``config.yaml``)."""

    data: str = ""
    members: list[MemberConfig] = field(default_factory=list)
    objective: Literal["mutual", "independent"] = "mutual"
    weight: float = param(1.0, ge=0.0)  # w in eq. 3
    divergence: Literal["mse", "kl"] = "mse"
    batched: bool = True  # stack members of one architecture (results unchanged)
    train: TrainConfig = field(default_factory=TrainConfig)


def split_init(init: str) -> tuple[Path, str | None]:
    """``RUN`` or ``RUN:member`` -> (run folder, member name or None)."""
    run, sep, member = init.rpartition(":")
    if sep and run and "/" not in member:
        return Path(run), member
    return Path(init), None


def pretrained_member(init: str) -> tuple[str, str, dict[str, Any], dict[str, torch.Tensor]]:
    """(member name, registry model, resolved hyperparameters, weights) of a pretrained run."""
    root, wanted = split_init(init)
    spec = read_model_spec(root)
    members = {m["name"]: m for m in spec["members"]}
    if wanted is None:
        if len(members) != 1:
            raise ConfigError(
                f"{root} holds {len(members)} models ({', '.join(members)}); "
                f"pick one as {root}:NAME"
            )
        wanted = next(iter(members))
    if wanted not in members:
        raise ConfigError(f"{root} has no model {wanted!r} (has {', '.join(members)})")
    weights = read_weights(root)["members"][wanted]
    return wanted, members[wanted]["model"], members[wanted]["config"], weights


def member_auc(run: str | Path, member: str | None = None) -> dict[str, float]:
    """``{"valid": auc, "test": auc}`` of one prediction of a finished run's metrics.json."""
    root, from_init = split_init(str(run))
    member = member or from_init
    metrics = json.loads((root / METRICS_FILE).read_text())
    out = {}
    for split, values in metrics.items():
        if split not in ("valid", "test"):
            continue
        if "auc" not in values:  # several predictions, keyed by name
            if member is None or member not in values:
                raise ConfigError(f"{root}/{METRICS_FILE} has no prediction {member!r}")
            values = values[member]
        out[split] = float(values["auc"])
    return out


def resolve_members(config: GroupRunConfig) -> GroupRunConfig:
    """A copy of ``config`` with every member's name, model and full hyperparameters filled in
    (a pretrained member's from its run folder)."""
    if len(config.members) < (2 if config.objective == "mutual" else 1):
        raise ConfigError(
            f"a {config.objective} group needs at least "
            f"{2 if config.objective == 'mutual' else 1} members, got {len(config.members)}"
        )
    resolved = []
    for m in config.members:
        if m.init:
            _, model, hyper, _ = pretrained_member(m.init)
            if m.model and m.model != model:
                raise ConfigError(f"member {m.name!r}: {m.init} holds a {model}, not {m.model}")
            resolved.append(MemberConfig(m.name, model, hyper, str(Path(m.init))))
        elif not m.model:
            raise ConfigError("every member needs a model or an init run")
        else:
            hyper = to_dict(model_config(m.model, m.model_config))
            resolved.append(MemberConfig(m.name, m.model, hyper, ""))
    for i, m in enumerate(resolved):
        if not m.name:
            same = [r.model for r in resolved].count(m.model)
            index = [r.model for r in resolved[: i + 1]].count(m.model)
            m.name = m.model if same == 1 else f"{m.model}_{index}"
    names = [m.name for m in resolved]
    if len(set(names)) != len(names):
        raise ConfigError(f"member names must be unique, got {names}")
    return dataclasses.replace(config, members=resolved)


def build_members(config: GroupRunConfig, store: EncodedStore) -> list[CTRModel]:
    """The members' models: seeded fresh initialisations or the pretrained runs' weights."""
    models = []
    for i, m in enumerate(config.members):
        seed_everything(config.train.seed + i)
        model = build_model(m.model, store.feature_map, m.model_config)
        if m.init:
            model.load_state_dict(pretrained_member(m.init)[3])
        models.append(model)
    return models


def build_group(models: list[CTRModel], names: list[str], batched: bool) -> torch.nn.Module:
    """A batched group when every member shares one architecture and size, else a plain one."""
    same_config = all(m.config == models[0].config for m in models)
    if batched and same_config and can_batch(models):
        return BatchedModelGroup(models, names)
    return ModelGroup(models, names)


def build_objective(config: GroupRunConfig) -> tuple[Objective, dict[str, Any]]:
    names = [m.name for m in config.members]
    if config.objective == "mutual":
        params = {"weight": config.weight, "divergence": config.divergence}
        return MutualObjective(names, **params), params
    return IndependentObjective(names), {}


def train_group(
    config: GroupRunConfig, out: str | Path, *, overwrite: bool = False,
    log: TextIO | None = None,
) -> FitResult:
    """Train the group described by ``config`` into the run folder ``out``.

    Re-running on a finished folder re-evaluates it; on an interrupted one it resumes.
    """
    config = resolve_members(config)
    if not config.data:
        raise ConfigError("no data: give --data DIR")
    store = EncodedStore.open(config.data)
    with RunFolder.open(out, to_dict(config), overwrite=overwrite) as run:
        models = build_members(config, store)
        names = [m.name for m in config.members]
        objective, params = build_objective(config)
        run.write_model_spec(model_spec(names, models, objective, params, store.feature_map))
        group = build_group(models, names, config.batched)
        test = store.split("test") if "test" in store.split_names else None
        result = fit(group, objective, store.split("train"), store.split("valid"),
                     config.train, run, test, log=log)
        result.metrics.update(compare_with_init(config, result.metrics))
        write_json_atomic(run.root / METRICS_FILE, result.metrics)
    return result


def compare_with_init(config: GroupRunConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    """``init`` (starting AUCs) and ``relaimp`` (against them) of every pretrained member."""
    init, rela = {}, {}
    for m in config.members:
        if not m.init:
            continue
        root, member = split_init(m.init)
        start = member_auc(root, member)
        init[m.name] = {"run": str(root), **start}
        rela[m.name] = {
            split: relaimp(_auc(metrics, split, m.name, len(config.members)), start[split])
            for split in start if split in metrics
        }
    return {"init": init, "relaimp": rela} if init else {}


def _auc(metrics: dict[str, Any], split: str, name: str, members: int) -> float:
    values = metrics[split]
    return float(values["auc"] if members == 1 else values[name]["auc"])
