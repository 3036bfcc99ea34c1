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

import difflib
import importlib
import pkgutil
from functools import cache
from typing import Any

from mutualctr.errors import ConfigError
from mutualctr.experiments.base import Experiment


@cache
def _registry() -> dict[str, Experiment[Any]]:
    """Name -> experiment, importing every subpackage once."""
    found: dict[str, Experiment[Any]] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        experiment = getattr(importlib.import_module(f"{__name__}.{info.name}"), "EXPERIMENT",
                             None)
        if isinstance(experiment, Experiment):
            if experiment.name in found:
                raise ValueError(f"two experiments are named {experiment.name!r}")
            found[experiment.name] = experiment
    return found


def experiment_names() -> list[str]:
    """The experiments' names, sorted."""
    return sorted(_registry())


def get_experiment(name: str) -> Experiment[Any]:
    """The experiment named ``name``."""
    registry = _registry()
    if name not in registry:
        close = difflib.get_close_matches(name, experiment_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown experiment {name!r}{hint} (experiments: "
                          f"{', '.join(experiment_names())})")
    return registry[name]
