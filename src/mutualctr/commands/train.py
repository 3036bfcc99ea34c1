"""``mutualctr train``: train one model from the registry on an encoded store.

Re-running the same command on the same ``--out`` resumes from the last checkpoint (or reports
that the run is finished and re-evaluates it); ``--resume`` does the same taking the config from
the run folder. Launched by ``torchrun --nproc_per_node=K -m mutualctr train ...`` it trains
data-parallel (see :mod:`mutualctr.training.distributed`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mutualctr.config import RunConfig, from_dict, load_config, merge, parse_overrides, to_dict
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.models.registry import build_model, model_config
from mutualctr.training import distributed
from mutualctr.training.group import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.restore import model_spec
from mutualctr.training.runfolder import open_run, read_config
from mutualctr.training.trainer import fit, resolve_device, seed_everything


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one CTR model on an encoded store",
        description="Train a model; metrics, checkpoints and predictions go to --out.",
    )
    parser.add_argument("--data", help="encoded store folder (from `mutualctr data prepare`)")
    parser.add_argument("--model", help="model name from the registry, e.g. deepfm")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--config", help="YAML config file (keys: model, model_config, train)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=7e-4 (repeatable)")
    parser.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=E")
    parser.add_argument("--seed", type=int, help="shorthand for --set train.seed=S")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out with the config stored there")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in --out even if it holds a run with another config")
    parser.set_defaults(func=run)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if args.model is not None:
        extra["model"] = args.model
    if args.data is not None:
        extra["data"] = str(Path(args.data).resolve())
    train = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    if train:
        extra["train"] = train
    return extra


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """File, flags and ``--set`` into a validated config with every model default written out."""
    if args.resume:
        stored = read_config(args.out)
        config = from_dict(RunConfig, merge(merge(stored, _flags(args)),
                                            parse_overrides(args.set)))
    else:
        config = load_config(RunConfig, args.config, args.set, extra=_flags(args))
    if not config.data:
        raise ConfigError("no data: give --data DIR (or `data:` in the config file)")
    config.model_config = to_dict(model_config(config.model, config.model_config))
    return config


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    train_cfg = config.train
    dist = distributed.init(resolve_device(train_cfg.device))
    try:
        device = resolve_device(train_cfg.device, dist)
        run_folder = open_run(args.out, to_dict(config), overwrite=args.overwrite, dist=dist,
                              device=device)
        try:
            store = EncodedStore.open(config.data)
            seed_everything(train_cfg.seed)
            model = build_model(config.model, store.feature_map, config.model_config)
            names = [config.model]
            test = store.split("test") if "test" in store.split_names else None
            objective = IndependentObjective(names)
            if run_folder is not None:
                run_folder.write_model_spec(
                    model_spec(names, [model], objective, {}, store.feature_map)
                )
            result = fit(
                ModelGroup([model], names), objective, store.split("train"),
                store.split("valid"), train_cfg, run_folder, test, dist,
            )
        finally:
            if run_folder is not None:
                run_folder.close()
    finally:
        distributed.shutdown(dist)
    if dist.is_main:
        print(json.dumps(result.metrics, indent=2))
    return 0
