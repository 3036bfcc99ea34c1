"""``mutualctr experiment NAME``: run a recipe that reproduces a paper's questions.

Each module in :mod:`mutualctr.experiments` that exposes ``register(subparsers)`` adds one
experiment (``yilmaz``, ``ektf``, ``cetnet`` ...), discovered like the top-level commands.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from mutualctr import experiments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="reproduce a paper's experiments and write a report",
        description="Run a recipe that reproduces a paper's research questions.",
    )
    names = parser.add_subparsers(dest="experiment", required=True, metavar="NAME")
    for info in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{experiments.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(names)
