"""Train and evaluate FuxiCTR 2.3.10 reference models on a mutualctr encoded store.

Run by ``benchmarks/bench_models.py`` and ``benchmarks/bench_sequence_models.py`` inside the
FuxiCTR virtual environment. Both libraries see the same rows with the same ids: the store's
encoded train/valid/test arrays are exported to parquet (one column per field, FuxiCTR's own data
format; not timed) and FuxiCTR's feature map is written from the store's ``meta.json``. A
sequence field is a fixed-size list column of its right-padded ids (``padding_idx`` 0); one
that shares the ids of a categorical target (``share_with``, FuxiCTR's ``share_embedding``) is a
behaviour history and keeps its positions for DIN/DIEN, any other is mean-pooled (FuxiCTR's
``MaskedAveragePooling``). FuxiCTR then runs as its users run it: ``RankDataLoader``
(Ray Data, parquet), ``BaseModel.fit`` for the epochs asked (validation each epoch, gradient
norm clipped at 10, the best checkpoint restored) and ``BaseModel.evaluate`` on test.

Timing: training samples/s = train rows x epochs / (time in ``fit`` minus its validation passes);
evaluation samples/s = test rows / time of ``evaluate`` on test. Prints ``RESULT {json}`` per
model.

Usage::

    python run_models.py --store DIR --work DIR --models deepfm,dcn,pnn,fibinet
    python run_models.py --store DIR --work DIR --models din,dien --aux-loss-alpha 1
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.dataloaders import RankDataLoader
from models import MODELS

LABEL = "label"
DATASET_ID = "mutualctr_store"


def _sequence_spec(feature: dict[str, Any], categorical: set[str]) -> dict[str, Any]:
    spec = {"source": "", "type": "sequence", "padding_idx": 0,
            "vocab_size": feature["vocab_size"], "max_len": feature["max_len"]}
    if feature.get("share_with"):
        spec["share_embedding"] = feature["share_with"]
    if feature.get("share_with") not in categorical:
        spec["feature_encoder"] = "layers.MaskedAveragePooling()"
    return spec


def export_store(store: Path, data_dir: Path) -> dict[str, int]:
    """Write FuxiCTR's ``feature_map.json`` and one parquet file per split; rows per split.
    Fields in mutualctr's embedding order: categorical, sequence, numeric (a shared embedding's
    owner comes first, as FuxiCTR requires)."""
    meta = json.loads((store / "meta.json").read_text())
    features = meta["feature_map"]["features"]
    categorical = [f for f in features if f["type"] == "categorical"]
    sequence = [f for f in features if f["type"] == "sequence"]
    numeric = [f for f in features if f["type"] == "numeric"]
    names = {f["name"] for f in categorical}
    spec: list[dict[str, Any]] = [
        {f["name"]: {"source": "", "type": "categorical", "padding_idx": 0,
                     "vocab_size": f["vocab_size"]}} for f in categorical
    ] + [{f["name"]: _sequence_spec(f, names)} for f in sequence] + [
        {f["name"]: {"source": "", "type": "numeric"}} for f in numeric]
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "feature_map.json").write_text(json.dumps({
        "dataset_id": DATASET_ID, "num_fields": len(spec),
        "total_features": sum(f["vocab_size"] for f in categorical + sequence
                              if not f.get("share_with")) + len(numeric),
        "input_length": len(spec) + sum(f["max_len"] - 1 for f in sequence),
        "labels": [LABEL], "features": spec,
    }))
    rows = {}
    for split in ("train", "valid", "test"):
        cat = np.load(store / split / "categorical.npy", mmap_mode="r")
        num = np.load(store / split / "numeric.npy", mmap_mode="r")
        columns = {f["name"]: pa.array(cat[:, k].astype(np.int64))
                   for k, f in enumerate(categorical)}
        for k, f in enumerate(sequence):
            ids = np.load(store / split / f"seq_{k}.npy").astype(np.int64)
            columns[f["name"]] = pa.FixedSizeListArray.from_arrays(pa.array(ids.ravel()),
                                                                    f["max_len"])
        columns |= {f["name"]: pa.array(num[:, k].astype(np.float32))
                    for k, f in enumerate(numeric)}
        columns[LABEL] = pa.array(np.load(store / split / "label.npy").astype(np.float32))
        pq.write_table(pa.table(columns), data_dir / f"{split}.parquet")
        rows[split] = len(cat)
    return rows


def _timed(fn: Callable[[], Any], spent: list[float]) -> Callable[[], Any]:
    @functools.wraps(fn)
    def wrapper() -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            spent.append(time.perf_counter() - start)
    return wrapper


MODEL_OPTIONS = {"din": ("attention_units",), "dien": ("aux_loss_alpha", "aux_hidden_units")}


def run_model(name: str, feature_map: FeatureMap, data_dir: Path, rows: dict[str, int],
              args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = MODELS[name](
        feature_map, embedding_dim=args.embedding_dim, hidden_units=args.hidden_units,
        learning_rate=args.lr, gpu=-1, optimizer="adam", loss="binary_crossentropy",
        metrics=["logloss", "AUC"], monitor="AUC", verbose=0, model_root=str(args.work / "ckpt"),
        embedding_regularizer=None, net_regularizer=None,
        **{option: getattr(args, option) for option in MODEL_OPTIONS.get(name, ())},
    )
    Path(model.model_dir).mkdir(parents=True, exist_ok=True)  # as FuxiCTR's run_expid.py does
    train_gen, valid_gen = RankDataLoader(
        feature_map, stage="train", train_data=str(data_dir / "train.parquet"),
        valid_data=str(data_dir / "valid.parquet"), batch_size=args.batch_size, shuffle=True,
        data_format="parquet",
    )
    validation_seconds: list[float] = []
    model.eval_step = _timed(model.eval_step, validation_seconds)
    start = time.perf_counter()
    model.fit(train_gen, epochs=args.epochs, validation_data=valid_gen)
    train_seconds = time.perf_counter() - start - sum(validation_seconds)

    test_gen = RankDataLoader(
        feature_map, stage="test", test_data=str(data_dir / "test.parquet"),
        batch_size=args.batch_size, shuffle=False, data_format="parquet",
    )
    start = time.perf_counter()
    logs = model.evaluate(test_gen, metrics=["AUC", "logloss"])
    eval_seconds = time.perf_counter() - start
    return {
        "model": name, "test_auc": float(logs["AUC"]), "test_logloss": float(logs["logloss"]),
        "train_samples_per_s": rows["train"] * args.epochs / train_seconds,
        "eval_samples_per_s": rows["test"] / eval_seconds,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
    }


def units(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="mutualctr encoded store")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--models", default="deepfm,dcn,pnn,fibinet")
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--hidden-units", type=units, default=[400, 200, 100])
    parser.add_argument("--attention-units", type=units, default=[64], help="DIN")
    parser.add_argument("--aux-loss-alpha", type=float, default=0.0, help="DIEN")
    parser.add_argument("--aux-hidden-units", type=units, default=[100, 50], help="DIEN")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    data_dir = args.work / DATASET_ID
    rows = export_store(args.store, data_dir)
    feature_map = FeatureMap(DATASET_ID, str(data_dir))
    feature_map.load(str(data_dir / "feature_map.json"), {"embedding_dim": args.embedding_dim})
    for name in args.models.split(","):
        result = run_model(name, feature_map, data_dir, rows, args)
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
