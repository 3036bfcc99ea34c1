"""What a method is: its name, its typed config, how it builds, its shorthand flags and presets.

A method module under :mod:`mutualctr.methods` defines a typed config dataclass (with ``data``
and ``train`` keys, validated by :func:`mutualctr.config.from_dict`), an objective under
:mod:`mutualctr.training.objectives`, and one ``METHOD = Method(...)``. That is all a new method
needs: the registry (:mod:`mutualctr.methods`) finds it, the command line makes
``mutualctr <name>`` from its :class:`Flag` s, ``tune`` searches it, the Python API trains it,
and :func:`mutualctr.methods.runner.run` does everything else (run folder, seed,
``model.json``, fit, scoring, reuse). A method made of several runs in a row (KD-DAGFM) lists
them as :class:`Stage` s instead of one ``build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from torch import nn

from mutualctr.config import from_dict, merge, to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.flags import Flag
from mutualctr.models.base import CTRModel
from mutualctr.training.objectives.base import Objective
from mutualctr.training.trainer import Finalize

C = TypeVar("C")


@dataclass
class Built:
    """A method's trainable pair and what ``model.json`` needs to rebuild it.

    Attributes:
        group: the module the trainer runs (``forward(batch) -> list[ModelOutput]``).
        objective: loss and named predictions.
        objective_params: keyword arguments that rebuild ``objective`` after the member names.
        models: the members as standalone registry models, in group order (a batched group
            stacks their parameters, a shared-embedding group drops their own tables: the run
            folder stores each member as the standalone model).
        names: the members' names, in group order.
    """

    group: nn.Module
    objective: Objective
    objective_params: dict[str, Any]
    models: list[CTRModel]
    names: list[str]


@dataclass(frozen=True)
class Stage(Generic[C]):
    """One run of a method made of several: its folder under the method's ``out``, and how it
    builds: ``build(config, store, folders=...)``, ``folders`` mapping the names of the stages
    up to this one to their run folders."""

    name: str
    build: Callable[[C, EncodedStore, Mapping[str, Path]], Built]


def _unchanged(config: C) -> C:
    return config


def _no_presets(given: Mapping[str, Any]) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Method(Generic[C]):
    """One collaborative-training (or plain) method.

    Attributes:
        name: the method's name, its command (``mutualctr <name>``) and ``method`` in its run
            folder's ``config.yaml``.
        config_class: its typed config.
        build: ``(config, store) -> Built``, called after seeding with ``train.seed``; ``None``
            for a method made of ``stages``.
        resolve: fills in what the config leaves implicit (e.g. every model hyperparameter),
            so that ``config.yaml`` holds the full resolved config.
        finalize: ``(config, store, built) -> (metrics, test predictions) -> metrics``: what
            the method adds to ``metrics.json`` beyond AUC and logloss per prediction.
        help: one line for ``mutualctr --help``.
        description: the command's description (``mutualctr <name> --help``).
        flags: its shorthand flags, besides ``--data``, ``--epochs`` and ``--seed``, which
            every method takes.
        presets: ``given -> defaults``: values that depend on what the user gave and sit below
            everything given (the finetuning learning rate when members start from runs).
        stages: the runs of a method made of several, in order, each into ``out/<name>``.
        combine: ``{stage: metrics} -> metrics``: what a staged method reports.
    """

    name: str
    config_class: type[C]
    build: Callable[[C, EncodedStore], Built] | None = None
    resolve: Callable[[C], C] = _unchanged
    finalize: Callable[[C, EncodedStore, Built], Finalize] | None = None
    help: str = ""
    description: str = ""
    flags: tuple[Flag, ...] = ()
    presets: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _no_presets
    stages: tuple[Stage[C], ...] = ()
    combine: Callable[[Mapping[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        if (self.build is None) == (not self.stages):
            raise ValueError(f"method {self.name!r}: give either build or stages")
        if self.stages and self.combine is None:
            raise ValueError(f"method {self.name!r}: a staged method needs combine")

    def config(self, values: Any = None, **settings: Any) -> C:
        """The method's config from ``values`` (a mapping such as a YAML file's content, or a
        config dataclass) with keyword settings merged over it (sections as mappings:
        ``train={"lr": 7e-4}``) and the method's presets below both, validated."""
        given = merge(to_dict(values) if values is not None else {}, to_dict(settings))
        return from_dict(self.config_class, merge(dict(self.presets(given)), given))

    def stage_name(self, stage: Stage[C]) -> str:
        """The method stored in a stage's ``config.yaml``, e.g. ``dagfm_teacher``."""
        return f"{self.name}_{stage.name}"
