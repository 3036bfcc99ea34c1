"""The ``mutualctr`` command.

Every registered method (:mod:`mutualctr.methods`) is a command of its name, built from its
declaration by :func:`mutualctr.cli_config.add_method_command`. Every other sub-command lives in
its own module under :mod:`mutualctr.commands`, named as the command, and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
Only what the command being run needs is imported (so ``mutualctr data prepare`` does not pay
for importing torch); ``--help`` and unknown commands import them all.
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
    if requested in names:
        importlib.import_module(f"{commands.__name__}.{requested}").register(subparsers)
        return parser
    from mutualctr import cli_config, methods  # torch and every method: only when needed

    if requested in methods.method_names():
        cli_config.add_method_command(subparsers, methods.get_method(requested))
        return parser
    for name in sorted([*names, *methods.method_names()]):
        if name in names:
            importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
        else:
            cli_config.add_method_command(subparsers, methods.get_method(name))
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
