"""What a method is: the one place that says how its group and objective are built from a
config.

A method module (:mod:`.independent`, :mod:`.mutual`, :mod:`.ektf`, :mod:`.cetnet`) defines a
typed config dataclass (it has ``data`` and ``train`` keys, validated by
:func:`mutualctr.config.from_dict`) and one :class:`Method`; :func:`mutualctr.methods.runner.run`
does everything else (run folder, seed, ``model.json``, fit, scoring, reuse). A method that is
several runs in a row (:mod:`.dagfm`) composes the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from torch import nn

from mutualctr.data.store import EncodedStore
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


def _unchanged(config: C) -> C:
    return config


@dataclass(frozen=True)
class Method(Generic[C]):
    """One collaborative-training (or plain) method.

    Attributes:
        name: the method's name, stored as ``method`` in the run's ``config.yaml``.
        config_class: its typed config.
        build: ``(config, store) -> Built``, called after seeding with ``train.seed``.
        resolve: fills in what the config leaves implicit (e.g. every model hyperparameter),
            so that ``config.yaml`` holds the full resolved config.
        finalize: ``(config, store, built) -> (metrics, test predictions) -> metrics``: what
            the method adds to ``metrics.json`` beyond AUC and logloss per prediction.
    """

    name: str
    config_class: type[C]
    build: Callable[[C, EncodedStore], Built]
    resolve: Callable[[C], C] = _unchanged
    finalize: Callable[[C, EncodedStore, Built], Finalize] | None = None
