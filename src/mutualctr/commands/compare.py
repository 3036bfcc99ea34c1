"""``mutualctr compare``: every applicable way of training the given models on a store, with its
controls and paired tests over seeds, and what each costs to serve (see
:mod:`mutualctr.comparison`). It takes the options every experiment takes (``--data``, ``--out``,
``--seeds``, ``--epochs``, the config options), ``--models``, ``--methods``, ``--student``,
``--dry-run`` and ``--report-only``."""

from __future__ import annotations

import argparse

from mutualctr.commands.experiment import add_experiment
from mutualctr.comparison import COMPARISON


def register(subparsers: argparse._SubParsersAction) -> None:
    add_experiment(subparsers, COMPARISON)
