"""Members of a group: from the registry or from a finished run folder, and how they are named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mutualctr.config import Validated, to_dict
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel
from mutualctr.models.registry import build_model, model_config
from mutualctr.runfolders.folder import read_metrics, read_model_spec, read_weights


@dataclass
class MemberConfig(Validated):
    """One model of a method, the one shape every method's models take.

    Attributes:
        name: its prediction's name; empty: the method names it (by model and position).
        model: a registry model name, e.g. deepfm.
        model_config: the model's hyperparameters that differ from its defaults, its
            embedding size (embedding_dim) among them.
        init: a finished run to start from, RUN or RUN:member; empty: from scratch.
    """

    name: str = ""
    model: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    init: str = ""


def build_member(member: MemberConfig, feature_map: FeatureMap) -> CTRModel:
    """``member``'s model, with its starting run's weights when it has one."""
    model = build_model(member.model, feature_map, member.model_config)
    if member.init:
        model.load_state_dict(pretrained_member(member.init)[3])
    return model


def from_scratch(members: Sequence[MemberConfig], what: str) -> None:
    """Refuse starting runs where a method trains its members from scratch (``what`` names
    them in the message)."""
    started = [m.init for m in members if m.init]
    if started:
        raise ConfigError(f"{what} train from scratch; init is not supported here, got "
                          f"{started}")


def positional_names(members: Sequence[MemberConfig]) -> list[str]:
    """Each member's name, or ``<model>_<position>`` (1-based) for one without: ``dnn_1,
    dnn_2`` or ``pnn_1, final_2, ecn_3``."""
    return [m.name or f"{m.model}_{i}" for i, m in enumerate(members, start=1)]


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
    """``{"valid": auc, "test": auc}`` of one prediction of a finished run (``RUN`` or
    ``RUN:member``; a run with a single prediction needs no member name)."""
    root, from_init = split_init(str(run))
    member = member or from_init
    out = {}
    for split, by_name in read_metrics(root).items():
        if split not in ("valid", "test"):
            continue
        name = member if member is not None else next(iter(by_name)) if len(by_name) == 1 else None
        if name not in by_name:
            raise ConfigError(f"{root}: metrics.json has no prediction {name!r} "
                              f"(has {', '.join(by_name)})")
        out[split] = float(by_name[name]["auc"])
    return out


def resolve_members(members: Sequence[MemberConfig], minimum: int, what: str
                    ) -> list[MemberConfig]:
    """Every member's name, model and full hyperparameters filled in (a pretrained member's
    from its run folder); ``what`` names the group in the error for fewer than ``minimum``."""
    if len(members) < minimum:
        raise ConfigError(f"a {what} group needs at least {minimum} members, got {len(members)}")
    resolved = []
    for m in members:
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
    models = [r.model for r in resolved]
    for i, m in enumerate(resolved):
        if not m.name:
            repeats = models.count(m.model)
            m.name = m.model if repeats == 1 else f"{m.model}_{models[:i + 1].count(m.model)}"
    names = [m.name for m in resolved]
    if len(set(names)) != len(names):
        raise ConfigError(f"member names must be unique, got {names}")
    return resolved
