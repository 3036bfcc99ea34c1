"""The ``mutualctr`` command.

Each sub-command lives in its own module under :mod:`mutualctr.commands`, named as the command,
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` to the function that
runs it. Only the module of the command being run is imported (so ``mutualctr data prepare`` does
not pay for importing torch); ``--help`` and unknown commands import them all.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from mutualctr import commands
from mutualctr.errors import MutualCTRError


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mutualctr",
        description="Train CTR models, alone or together (mutual learning, EKTF, CETNet).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    requested = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name in [requested] if requested in names else names:
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
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
