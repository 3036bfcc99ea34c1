"""Shorthand command-line flags as data: what a method or an experiment declares, and the
command line (:mod:`mutualctr.cli_config`) turns into options. Nothing here parses a command
line, so the library declares its flags without importing the command-line layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNSET: Any = object()  # a Flag without const takes a value


@dataclass(frozen=True)
class Flag:
    """A shorthand command-line flag: an alias of a config key (or of several).

    Attributes:
        name: the flag, e.g. ``--models``.
        key: the dotted config key it sets, e.g. ``members`` or ``teacher.model``; several
            keys set to the same value; ``list[].key`` sets ``key`` in every item of the list
            ``list`` (the config's default list when none is given); ``""`` for a flag that
            is not part of the config (it only feeds ``after_run``).
        help: the help text; empty: the key's field documentation (the ``Attributes:``
            section of its config class's docstring).
        value: turns the parsed value into the key's value, given every parsed flag of the
            command by destination name (for flags that combine, like EKTF's ``--k`` and
            ``--hidden``); ``None`` from it leaves the key unset.
        type: argparse's ``type``; ``None``: the key's field type when it is a scalar.
        nargs: argparse's ``nargs``; ``None``: ``"+"`` for a list field.
        choices: the allowed values; ``None``: the field's ``Literal`` values.
        const: a switch storing this value (``--shared-embedding`` stores ``True``,
            ``--no-stop-gradient`` stores ``False``).
        metavar: argparse's ``metavar``.
        exclusive: flags with the same non-empty name here exclude each other.
        after_run: ``(out, value) -> line``: run after training when the flag is given; the
            line is printed (EKTF's ``--export-best``).
    """

    name: str
    key: str | tuple[str, ...]
    help: str = ""
    value: Callable[[Any, Mapping[str, Any]], Any] | None = None
    type: Callable[[str], Any] | None = None
    nargs: str | None = None
    choices: Sequence[Any] | None = None
    const: Any = UNSET
    metavar: str | None = None
    exclusive: str = ""
    after_run: Callable[[Path, Any], str] | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The config keys it sets."""
        return (self.key,) if isinstance(self.key, str) else self.key

    @property
    def dest(self) -> str:
        """The argparse destination: the flag's name without dashes, ``-`` as ``_``."""
        return self.name.lstrip("-").replace("-", "_")
