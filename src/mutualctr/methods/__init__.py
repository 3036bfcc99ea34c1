"""The method registry: every module of this package that defines ``METHOD`` is a method.

``get_method("mutual")`` gives one, ``method_names()`` lists them. A method's name is its
command (``mutualctr mutual``), its key in ``tune``'s ``method`` and its word in the Python
API (``mutualctr.train("mutual", ...)``); see :mod:`mutualctr.methods.base` for what a method
declares.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mutualctr.methods.base import Method
from mutualctr.registries import declared, pick


@cache
def _registry() -> dict[str, Method[Any]]:
    """Name -> method, importing every module of the package once."""
    return declared(__name__, __path__, "METHOD", Method)


def method_names() -> list[str]:
    """The registered methods' names, sorted."""
    return sorted(_registry())


def get_method(name: str) -> Method[Any]:
    """The method registered as ``name``."""
    return pick(_registry(), name, "method")
