"""The experiments that reproduce papers' tables, and their registry.

Each subpackage that defines ``EXPERIMENT`` (:class:`~mutualctr.experiments.base.Experiment`)
is one paper's experiment: ``yilmaz`` (mutual learning for finetuning), ``ektf`` (ensemble
knowledge transfer) and ``cetnet`` (the collaborative ensemble), each with ``plan.py`` (its
config and its runs), ``report.py`` (its tables from the runs' records) and ``paper.py`` (the
paper's own figures). Shared by all: :mod:`.engine` (jobs, running a plan, records),
:mod:`.report` (markdown tables, CSV files, plots) and :mod:`.curves` (learning curves).

``get_experiment("yilmaz")`` gives one, ``experiment_names()`` lists them; the command line
builds ``mutualctr experiment <name>`` from each.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mutualctr.experiments.base import Experiment
from mutualctr.registries import declared, pick


@cache
def _registry() -> dict[str, Experiment[Any]]:
    """Name -> experiment, importing every subpackage once."""
    return declared(__name__, __path__, "EXPERIMENT", Experiment, packages_only=True)


def experiment_names() -> list[str]:
    """The experiments' names, sorted."""
    return sorted(_registry())


def get_experiment(name: str) -> Experiment[Any]:
    """The experiment named ``name``."""
    return pick(_registry(), name, "experiment")
