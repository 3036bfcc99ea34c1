"""The ``mutualctr`` command.

Each sub-command lives in its own module under :mod:`mutualctr.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from mutualctr import commands
from mutualctr.errors import MutualCTRError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mutualctr",
        description="Train CTR models, alone or together (mutual learning, EKTF, CETNet).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except MutualCTRError as err:
        print(f"mutualctr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutualctr: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
