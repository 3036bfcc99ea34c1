"""The method registry: every module of this package that defines ``METHOD`` is a method.

``get_method("mutual")`` gives one, ``method_names()`` lists them. A method's name is its
command (``mutualctr mutual``), its key in ``tune``'s ``method`` and its word in the Python
API (``mutualctr.train("mutual", ...)``); see :mod:`mutualctr.methods.base` for what a method
declares.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from functools import cache
from typing import Any

from mutualctr.errors import ConfigError
from mutualctr.methods.base import Method


@cache
def _registry() -> dict[str, Method[Any]]:
    """Name -> method, importing every module of the package once."""
    found: dict[str, Method[Any]] = {}
    for info in pkgutil.iter_modules(__path__):
        method = getattr(importlib.import_module(f"{__name__}.{info.name}"), "METHOD", None)
        if isinstance(method, Method):
            if method.name in found:
                raise ValueError(f"two methods are named {method.name!r}")
            found[method.name] = method
    return found


def method_names() -> list[str]:
    """The registered methods' names, sorted."""
    return sorted(_registry())


def get_method(name: str) -> Method[Any]:
    """The method registered as ``name``."""
    registry = _registry()
    if name not in registry:
        close = difflib.get_close_matches(name, method_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint} (methods: {', '.join(method_names())})")
    return registry[name]
