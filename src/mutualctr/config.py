"""Typed configuration: YAML (safe-loaded) validated into nested dataclasses.

Every part of the project describes its settings as a dataclass and reads user input with
:func:`from_dict`, which

* rejects an unknown key, naming it, where it was found and the closest valid key (difflib);
* checks types (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``list``/``tuple``,
  ``dict``, optional values and nested dataclasses) and ranges declared with :func:`param`;
* accepts ``1e-3`` for floats although YAML 1.1 reads it as a string.

A config dataclass deriving from :class:`Validated` runs the same type and range checks (and
conversions) on every field when it is constructed, however it is built: ``TrainConfig(lr=-1)``
in Python fails as ``--set train.lr=-1`` does, with the same message less the key path.

``--set a.b=value`` overrides are parsed with :func:`parse_overrides` (values as YAML scalars or
flow lists) and merged over the file with :func:`merge`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import operator
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from mutualctr.errors import ConfigError

T = TypeVar("T")

_RANGE_CHECKS = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}


def param(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with an allowed range, checked by :func:`from_dict` and, in a
    :class:`Validated` config, at construction.

    On a list or tuple field the range applies to every item (``hidden_units`` widths >= 1). A
    subclass that redeclares a field without a range of its own (a new default only) keeps the
    range its base class declared.
    """
    bounds = {k: v for k, v in zip(_RANGE_CHECKS, (ge, gt, le, lt), strict=True) if v is not None}
    return field(default=default, default_factory=default_factory, metadata=bounds)


def _where(path: str) -> str:
    return path if path else "the top level"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # built already (and checked when built, if it is Validated)
            return value
        return from_dict(tp, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {list(args)}, got {value!r} (expected one "
                              "of them exactly)")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} fits none of "
                          f"{[_type_name(a) for a in args]}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected bool (true or false), got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if origin in (list, tuple, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        value_tp = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, value_tp, f"{path}.{k}") for k, v in value.items()}
    raise TypeError(f"{path}: unsupported config type {tp!r}")  # a programming error


def _check_range(value: Any, bounds: Mapping[str, float], path: str) -> None:
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_range(item, bounds, f"{path}[{i}]")
        return
    for key, bound in bounds.items():
        compare, sign = _RANGE_CHECKS[key]
        if value is not None and not compare(value, bound):
            raise ConfigError(f"{path}: must be {sign} {bound}, got {value!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _bounds(cls: type) -> dict[str, dict[str, float]]:
    """Each field's range: its own :func:`param` bounds, else those of the nearest base class
    that declared the field with bounds."""
    bounds: dict[str, dict[str, float]] = {}
    for klass in reversed(cls.__mro__):
        if "__dataclass_fields__" in vars(klass):
            for f in dataclasses.fields(klass):
                own = {k: v for k, v in f.metadata.items() if k in _RANGE_CHECKS}
                if own:
                    bounds[f.name] = own
    return bounds


def _field_value(cls: type, f: dataclasses.Field, value: Any, path: str) -> Any:
    """``value`` for field ``f`` of ``cls``, type-checked, converted and range-checked: the one
    check :func:`from_dict` and :class:`Validated` both run."""
    value = _convert(_over_default(f, value), _hints(cls)[f.name], path)
    _check_range(value, _bounds(cls).get(f.name, {}), path)
    return value


def validate(obj: Any) -> None:
    """Check and convert every init field of dataclass instance ``obj`` in place (frozen ones
    too), as :func:`from_dict` does; errors name the field (``lr: must be > 0.0, got -1.0``)."""
    cls = type(obj)
    for f in dataclasses.fields(obj):
        if f.init:
            object.__setattr__(obj, f.name, _field_value(cls, f, getattr(obj, f.name), f.name))


class Validated:
    """Base class of config dataclasses whose fields are checked when an instance is built.

    Before any ``__post_init__`` of the subclass's own runs, :func:`validate` checks every
    field's type and :func:`param` range and converts it as :func:`from_dict` does (``1`` or
    ``"1e-3"`` to a float, a list to a tuple where the field is a tuple), raising
    :class:`~mutualctr.errors.ConfigError`; so a config built in Python equals the one built
    from the same values in YAML. A nested config field given a mapping is built with
    :func:`from_dict` over the field's default, as a YAML mapping would be.

    A subclass's own ``__post_init__`` needs no ``super()`` call: it is wrapped to validate
    first (once, however many classes of the hierarchy define one). Fields assigned after
    construction are not checked again.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls).get("__post_init__")
        if own is not None and not getattr(own, "_validates", False):
            cls.__post_init__ = _validating(own)  # type: ignore[method-assign]

    def __post_init__(self) -> None:
        if type(self).__post_init__ is Validated.__post_init__:
            validate(self)


def _validating(own: Any) -> Any:
    """``own`` (a subclass's ``__post_init__``) preceded by :func:`validate`, unless a
    subclass's wrapper has validated the instance already."""

    @functools.wraps(own)
    def post_init(self: Any) -> None:
        if type(self).__post_init__ is post_init:
            validate(self)
        own(self)

    post_init._validates = True  # type: ignore[attr-defined]
    return post_init


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating keys, types and ranges.

    Args:
        cls: the dataclass to build; nested dataclass fields are built recursively.
        data: a mapping (``None`` means all defaults).
        path: where ``data`` sits in the user's config (``"train.schedule"``), for messages.

    A key a config class once had is answered with what to write instead: the class's
    ``MOVED_KEYS`` (a ``ClassVar`` mapping the old key to that advice).

    Raises:
        ConfigError: on an unknown key, a missing required key, a wrong type or a value out of
            range; the message names the full key path.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(path)}: expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    moved: Mapping[str, str] = getattr(cls, "MOVED_KEYS", {})
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            if key in moved:
                raise ConfigError(f"config key {where!r} is no more: {moved[key]}")
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(fields)}"
            raise ConfigError(f"unknown config key {where!r}{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            no_default = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigError(f"missing required config key {sub!r}")
            continue
        kwargs[name] = _field_value(cls, f, data[name], sub)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{_where(path)}: {err}") from err


def _over_default(f: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a field whose default is a dataclass overrides that default key by
    key (``--set train.epochs=2`` keeps an experiment's own default ``train.batch_size``)."""
    if not isinstance(value, Mapping):
        return value
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if dataclasses.is_dataclass(default):
        return merge(to_dict(default), value)
    return value


def to_dict(obj: Any) -> Any:
    """A dataclass (possibly nested) as plain YAML/JSON-able dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Safe-load a YAML mapping; a missing, unreadable or malformed file is a ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top, got {data!r}")
    return data


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.lr=7e-4", "model_config.mlp=[400,200]"]`` -> nested dict of YAML values."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. train.lr=1e-3), got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from err
        parts = key.strip().split(".")
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} was already set to a value")
        node[parts[-1]] = value
    return result


def nested(key: str, value: Any) -> dict[str, Any]:
    """``nested("train.epochs", 2) == {"train": {"epochs": 2}}``."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    cls: type[T], file: str | Path | None = None, overrides: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> T:
    """File (optional), then ``extra`` (e.g. from dedicated flags), then ``--set`` overrides."""
    data: dict[str, Any] = load_yaml(file) if file is not None else {}
    data = merge(data, extra or {})
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)
