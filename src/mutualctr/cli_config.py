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
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mutualctr import files
from mutualctr.config import from_dict, load_yaml, merge, parse_overrides, to_dict
from mutualctr.errors import ConfigError
from mutualctr.methods import runner
from mutualctr.methods.base import Method
from mutualctr.methods.runner import RunResult
from mutualctr.runs.folder import CONFIG_FILE, METHOD_KEY

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


def nested(key: str, value: Any) -> dict[str, Any]:
    """``nested("train.epochs", 2) == {"train": {"epochs": 2}}``."""
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


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
    data = load_yaml(path)
    made_by = data.pop(METHOD_KEY, None)
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
    if args.resume and args.config:
        raise ConfigError("--resume takes the config stored in --out; drop --config")
    base = dict(stored or {}) if args.resume else load_yaml(args.config) if args.config else {}
    given = merge(merge(base, flags), parse_overrides(args.set))
    return from_dict(cls, merge(presets(given), given) if presets else given)


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


def run_method_command(
    args: argparse.Namespace, method: Method[T], flags: Mapping[str, Any], *,
    run: Callable[..., RunResult] | None = None, config_folder: Path | None = None,
) -> int:
    """Resolve the config of ``method`` from the command line and train it into ``--out``
    (``run``: a method that composes several runs, e.g. KD-DAGFM's, whose stored config is
    read from ``config_folder``); print ``metrics.json``'s content."""
    common = {"data": absolute(args.data), "train.epochs": args.epochs, "train.seed": args.seed}
    stored = None
    if args.resume:
        stored = stored_config(config_folder or args.out, method.name, CONFIG_FILE)
    config = resolve_config(method.config_class, args, flag_values({**common, **flags}),
                            stored=stored)
    if args.print_config:
        print_config(method.resolve(config))
        return 0
    if run is None:
        result = runner.run(method, config, args.out, overwrite=args.overwrite)
    else:
        result = run(config, args.out, overwrite=args.overwrite)
    if result.reused:
        print(f"{args.out}: already finished with this config; reusing its metrics (use "
              "--overwrite to train again)", file=sys.stderr)
    if result.primary:
        print(json.dumps(result.metrics, indent=2))
    return 0


EXPERIMENT_CONFIG_FILE = "experiment.yaml"  # an experiment folder's resolved config


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
) -> T | None:
    """The experiment's resolved config, stored as ``OUT/experiment.yaml`` (what ``--resume``
    reads); ``None`` when ``--print-config`` printed it instead."""
    common = {"data": absolute(args.data), "seeds": args.seeds, "train.epochs": args.epochs}
    stored = stored_config(args.out, None, EXPERIMENT_CONFIG_FILE) if args.resume else None
    config = resolve_config(cls, args, flag_values({**common, **flags}), stored=stored,
                            presets=presets)
    if args.print_config:
        print_config(config)
        return None
    args.out.mkdir(parents=True, exist_ok=True)
    files.write_yaml(args.out / EXPERIMENT_CONFIG_FILE, to_dict(config))
    return config
