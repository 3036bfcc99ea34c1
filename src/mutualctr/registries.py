"""Finding what a package declares, and picking one by name: the method registry
(:mod:`mutualctr.methods`) and the experiment registry (:mod:`mutualctr.experiments`) are both
"every module of the package that defines X"."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from mutualctr.errors import ConfigError

T = TypeVar("T")


def declared(package: str, path: Iterable[str], attribute: str, kind: type[T], *,
             packages_only: bool = False) -> dict[str, T]:
    """Name -> object for every module of ``package`` (its ``__path__`` is ``path``) whose
    ``attribute`` is a ``kind`` (every subpackage with ``packages_only``), named by its
    ``name``; importing each module once."""
    found: dict[str, T] = {}
    for info in pkgutil.iter_modules(path):
        if packages_only and not info.ispkg:
            continue
        value: Any = getattr(importlib.import_module(f"{package}.{info.name}"), attribute, None)
        if isinstance(value, kind):
            if value.name in found:
                raise ValueError(f"two {kind.__name__}s are named {value.name!r}")
            found[value.name] = value
    return found


def pick(found: Mapping[str, T], name: str, what: str) -> T:
    """``found[name]``; an unknown name is a :class:`ConfigError` naming the closest one and
    listing them all (``what``: the kind, e.g. "method")."""
    if name not in found:
        close = difflib.get_close_matches(name, sorted(found), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {what} {name!r}{hint} ({what}s: {', '.join(sorted(found))})")
    return found[name]
