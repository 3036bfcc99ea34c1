"""The command dispatcher: lazy loading of sub-command modules, and a command per method."""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys

import pytest

from mutualctr import commands
from mutualctr.cli import build_parser
from mutualctr.methods import method_names

COMMAND_MODULES = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def _choices(parser: argparse.ArgumentParser) -> set[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_each_module_registers_the_command_named_after_it(name: str) -> None:
    assert _choices(build_parser([name])) == {name}


@pytest.mark.parametrize("name", method_names())
def test_each_method_is_the_command_of_its_name(name: str) -> None:
    assert _choices(build_parser([name])) == {name}


def test_help_lists_every_command_and_every_method() -> None:
    assert {"train", "mutual", "ektf", "cetnet", "dagfm"} <= set(method_names())
    assert not set(method_names()) & set(COMMAND_MODULES)
    assert _choices(build_parser(["--help"])) == {*COMMAND_MODULES, *method_names()}


def test_data_commands_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from mutualctr.cli import main\n"
        "try:\n"
        "    main(['data', 'synth', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
