"""The command-line convention of every training command and experiment.

Each takes ``--config FILE`` (YAML), ``--set KEY=VALUE`` (repeatable; the value is YAML, a
list is a flow list: ``--set train.lr=7e-4 --set scales=[2,4]``), ``--print-config`` (print
the resolved config as YAML, runnable as ``--config``, and exit), ``--overwrite`` (start over
in a folder that holds another config) and ``--resume`` (continue with the config stored in the
output folder). A command's shorthand flags (``--epochs``, ``--models a b`` ...) are aliases of
config keys; lists on the command line are space-separated.

Precedence, lowest first: the config class's defaults, the file (or, with ``--resume``, the
stored config), the shorthand flags, ``--set``. So a shorthand never overrides an explicit
``--set`` of the same key.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mutualctr.config import from_dict, load_yaml, merge, nested, parse_overrides, to_dict
from mutualctr.errors import ConfigError
from mutualctr.experiments import engine
from mutualctr.flags import UNSET, Flag
from mutualctr.methods import runner
from mutualctr.methods.base import Method
from mutualctr.runfolders.folder import (
    CONFIG_FILE,
    METHOD_KEY,
    RENAMED_METHODS,
    load_run_yaml,
)

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser, *, keys: str) -> None:
    """``--config``, ``--set``, ``--print-config``, ``--overwrite`` and ``--resume``;
    ``keys`` lists the config's top-level keys for the help text."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help=f"YAML config file (keys: {keys})")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.lr=7e-4 or "
                            "--set model_config.hidden_units=[400,200] (repeatable)")
    group.add_argument("--print-config", action="store_true",
                       help="print the resolved config (runnable with --config) and exit")
    group.add_argument("--overwrite", action="store_true",
                       help="start over in --out even if it holds a run of another config")
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out with the config stored there "
                            "(--set and flags still apply on top)")


def flag_values(pairs: Mapping[str, Any]) -> dict[str, Any]:
    """Shorthand flags as config overrides: ``{"train.epochs": 2, "model": None}`` ->
    ``{"train": {"epochs": 2}}`` (flags not given, ``None``, are left out)."""
    out: dict[str, Any] = {}
    for key, value in pairs.items():
        if value is not None:
            out = merge(out, nested(key, value))
    return out


def absolute(path: str | Path | None) -> str | None:
    """A path flag as an absolute path (run folders store where their data is)."""
    return None if path is None else str(Path(path).resolve())


def stored_config(folder: str | Path, method: str | None, file: str) -> dict[str, Any]:
    """The config stored in ``folder/file`` for ``--resume``, without its method key."""
    path = Path(folder) / file
    if not path.is_file():
        raise ConfigError(f"--resume: {folder} holds no {file}; run without --resume first")
    data = load_run_yaml(path)
    made_by = data.pop(METHOD_KEY, None)
    made_by = RENAMED_METHODS.get(made_by, made_by)
    if method is not None and made_by not in (None, method):
        raise ConfigError(f"--resume: {folder} was made by `mutualctr {made_by}`, "
                          f"not `mutualctr {method}`")
    return data


def resolve_config(
    cls: type[T], args: argparse.Namespace, flags: Mapping[str, Any], *,
    stored: Mapping[str, Any] | None = None,
    presets: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> T:
    """File (or ``stored`` with ``--resume``), then ``flags``, then ``--set``, validated.

    ``presets`` maps those merged values to defaults that sit below all of them (e.g. the
    EKTF experiment's ``size: tiny|small|paper``).
    """
    given = given_values(args, flags, stored=stored)
    return from_dict(cls, merge(presets(given), given) if presets else given)


def given_values(args: argparse.Namespace, flags: Mapping[str, Any], *,
                 stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the user gave, merged: the file (or ``stored`` with ``--resume``), then ``flags``,
    then ``--set``."""
    if args.resume and args.config:
        raise ConfigError("--resume takes the config stored in --out; drop --config")
    base = dict(stored or {}) if args.resume else load_yaml(args.config) if args.config else {}
    return merge(merge(base, flags), parse_overrides(args.set))


def print_config(config: Any) -> None:
    """The resolved config as YAML, in the shape ``--config`` reads."""
    print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")


def add_run_arguments(parser: argparse.ArgumentParser, *, keys: str) -> None:
    """What every training command takes: ``--data``, ``--out``, the shorthands ``--epochs``
    and ``--seed``, and the configuration arguments."""
    parser.add_argument("--data", help="encoded store folder, from `mutualctr data prepare` "
                        "(alias of `data`)")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--epochs", type=int, help="alias of train.epochs")
    parser.add_argument("--seed", type=int, help="alias of train.seed")
    add_config_arguments(parser, keys=keys)


def add_method_command(subparsers: argparse._SubParsersAction, method: Method[Any]) -> None:
    """``mutualctr <method>``: its parser, built from the method's declaration (its flags,
    their help from the config's field documentation), running :func:`run_method_command`."""
    parser = subparsers.add_parser(method.name, help=method.help,
                                   description=method.description or method.help)
    add_flags(parser, method.flags, method.config_class)
    keys = ", ".join(f.name for f in dataclasses.fields(method.config_class))
    add_run_arguments(parser, keys=keys)
    parser.set_defaults(func=partial(run_method_command, method=method))


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag], config_class: type
              ) -> None:
    """One option per shorthand flag of a method or an experiment whose config is
    ``config_class`` (the value lands in :attr:`Flag.dest`)."""
    exclusive: dict[str, Any] = {}
    for flag in flags:
        target: Any = parser
        if flag.exclusive:
            if flag.exclusive not in exclusive:
                exclusive[flag.exclusive] = parser.add_mutually_exclusive_group()
            target = exclusive[flag.exclusive]
        target.add_argument(flag.name, dest=flag.dest, **flag_arguments(config_class, flag))


def flag_arguments(config_class: type, flag: Flag) -> dict[str, Any]:
    """argparse's keyword arguments for ``flag``: what the flag says, the rest from its config
    key (a scalar's type, a list's ``nargs="+"``, a ``Literal``'s choices, the field's doc),
    except for a flag that converts its value, whose key's type is not the flag's."""
    tp, doc = config_field(config_class, flag.keys[0]) if flag.key else (None, "")
    alias = f"alias of `{flag.keys[0]}`" if flag.key else ""
    text = flag.help or (f"{doc.rstrip('.')} ({alias})" if doc else alias)
    if flag.value is not None:
        tp = None
    kwargs: dict[str, Any] = {"help": text.replace("%", "%%")}
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    if flag.const is not UNSET:
        return {**kwargs, "action": "store_const", "const": flag.const}
    if typing.get_origin(tp) in (list, tuple):
        tp = typing.get_args(tp)[0]
        kwargs["nargs"] = "+"
    choices = flag.choices
    if typing.get_origin(tp) is typing.Literal:
        choices = choices or typing.get_args(tp)
        tp = type(typing.get_args(tp)[0])
    if flag.nargs:
        kwargs["nargs"] = flag.nargs
    if choices:
        kwargs["choices"] = list(choices)
    value_type = flag.type or (tp if tp in (int, float, str) else None)
    if value_type is not None:
        kwargs["type"] = value_type
    return kwargs


def config_field(cls: type, key: str) -> tuple[Any, str]:
    """The type and documentation of the dotted config ``key`` of dataclass ``cls``
    (``list[].key`` for a key of the list's items); ``(Any, "")`` below a field that is not a
    dataclass (a model's hyperparameters)."""
    tp: Any = cls
    doc = ""
    for part in key.replace("[]", "").split("."):
        if typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        if not dataclasses.is_dataclass(tp):
            return Any, ""
        tp, doc = typing.get_type_hints(tp)[part], field_docs(tp).get(part, "")
    return tp, doc


def field_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a class's docstring, by name, each as one line."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        return docs
    name = ""
    for line in lines[lines.index("Attributes:") + 1:]:
        if not line.strip():
            break
        head, sep, text = line.strip().partition(": ")
        if line.startswith("    ") and not line.startswith("     ") and sep:
            name, docs[head] = head, text.strip()
        elif name:
            docs[name] += " " + line.strip()
    return docs


def flag_overrides(args: argparse.Namespace, flags: Sequence[Flag]
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shorthand flags given on the command line by dotted config key (a flag not given
    sets nothing), and apart, those that set a key in every item of a list (``list[].key``)."""
    given = vars(args)
    pairs: dict[str, Any] = {}
    each: dict[str, Any] = {}
    for flag in flags:
        value = given.get(flag.dest)
        if not flag.key or value is None:
            continue
        value = flag.value(value, given) if flag.value else value
        for key in flag.keys:
            target = each if "[]." in key else pairs
            target[key] = target.get(key) if value is None else value
    return pairs, each


def set_in_each(config_class: type, given: Mapping[str, Any], key: str, value: Any
                ) -> dict[str, Any]:
    """``given`` with ``rest`` set to ``value`` in every item of ``list`` for ``key`` =
    ``list[].rest``; the list is the config's default when ``given`` has none."""
    head, _, rest = key.partition("[].")
    items: Any = given
    for part in head.split("."):
        items = items.get(part) if isinstance(items, Mapping) else None
    if items is None:
        items = to_dict(getattr(from_dict(config_class, {}), head.split(".")[0]))
        for part in head.split(".")[1:]:
            items = items[part]
    return merge(given, nested(head, [merge(to_dict(item), nested(rest, value))
                                      for item in items]))


def run_method_command(args: argparse.Namespace, *, method: Method[Any]) -> int:
    """Resolve the config of ``method`` from the command line (presets below what was given)
    and train it into ``--out``; print ``metrics.json``'s content and what the flags that act
    after training print."""
    stored = None
    if args.resume:
        folder, stored_name = runner.config_folder(method, args.out)
        stored = stored_config(folder, stored_name, CONFIG_FILE)
    flags, each = flag_overrides(args, method.flags)
    common = {"data": absolute(args.data), "train.epochs": args.epochs, "train.seed": args.seed}
    given = given_values(args, flag_values({**common, **flags}), stored=stored)
    for key, value in each.items():
        given = set_in_each(method.config_class, given, key, value)
    config = method.config(given)
    if args.print_config:
        print_config(method.resolve(config))
        return 0
    result = runner.run(method, config, args.out, overwrite=args.overwrite)
    if result.reused:
        print(f"{args.out}: already finished with this config; reusing its metrics (use "
              "--overwrite to train again)", file=sys.stderr)
    if result.primary:
        print(json.dumps(result.metrics, indent=2))
        for flag in method.flags:
            value = getattr(args, flag.dest)
            if flag.after_run is not None and value is not None:
                print(flag.after_run(args.out, value))
    return 0


def add_experiment_arguments(parser: argparse.ArgumentParser, *, keys: str) -> None:
    """What every experiment takes: ``--data``, ``--out``, ``--seeds`` (runs per
    configuration), ``--epochs`` and the configuration arguments."""
    parser.add_argument("--data", help="encoded store folder (alias of `data`)")
    parser.add_argument("--out", required=True, type=Path,
                        help="experiment folder: run folders, report.md, tables, plots")
    parser.add_argument("--seeds", type=int, help="runs per configuration (alias of `seeds`)")
    parser.add_argument("--epochs", type=int, help="alias of train.epochs")
    add_config_arguments(parser, keys=keys)


def experiment_config(
    cls: type[T], args: argparse.Namespace, flags: Mapping[str, Any], *,
    presets: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    save: bool = True,
) -> T | None:
    """The experiment's resolved config, stored as ``OUT/experiment.yaml`` (what ``--resume``
    reads; :func:`mutualctr.experiments.engine.save_config`) unless not ``save``; ``None`` when
    ``--print-config`` printed it instead. ``flags``: the experiment's shorthand flags by config
    key."""
    common = {"data": absolute(args.data), "seeds": args.seeds, "train.epochs": args.epochs}
    stored = (stored_config(args.out, None, engine.EXPERIMENT_CONFIG_FILE) if args.resume
              else None)
    config = resolve_config(cls, args, flag_values({**common, **flags}), stored=stored,
                            presets=presets)
    if args.print_config:
        print_config(config)
        return None
    if save:
        engine.save_config(args.out, config)
    return config
