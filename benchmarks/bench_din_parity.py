"""DIN and DIEN parity with FuxiCTR 2.3.10 on a DIN-style MovieLens log, with two DNN controls.

The log is built the way DIN's Amazon data is (Zhou et al., KDD 2018; docs/data.md,
"Amazon-style recipe") from MovieLens latest-small: each user's ratings in time order (ties in
file order), the first one a history-only event (``--history-log``), each next one a positive
row and one movie the user never rated (drawn uniformly, with ``--log-seed``, from all rated
movies) at the same time a negative row. Fields: user, movie, its first genre (``cat``), and the
histories of movies and genres (``events: positive``, the newest ``--max-len``), prepared with
``--split user-last``: each user's rows at its last time to test, at the time before to valid.

Every model trains on that one store: ours in process (``bench_models.run_ours``: the trainer
with FuxiCTR's defaults, ReduceLROnPlateau and early stopping on validation AUC with patience 2,
the best epoch restored), FuxiCTR's through ``fuxictr_reference/run_models.py`` (the store
exported to parquet, its ``BaseModel.fit`` with the same defaults). Shared settings: embedding
16, MLP [200, 80], Adam lr 1e-3, no L2, gradient norm clipped at 10, batch ``--batch-size``,
``--epochs`` epochs at most, one torch thread. DIN: attention MLP [64] with Dice, no softmax;
DIEN: AUGRU, bilinear attention with softmax, batch norm in the MLP, no auxiliary loss (model_zoo
DIEN's default; its own auxiliary loss cannot run, see ``fuxictr_reference/models.py``).
Controls (ours only): ``dnn`` over all fields with the histories mean-pooled, and ``dnn`` with
the histories excluded (``exclude_fields``).

Seeds run one after the other, every model of a seed before the next seed, so a stopped run
still has whole seeds; each finished run is appended to ``--json-out`` as one JSON line.

Usage::

    python benchmarks/bench_din_parity.py --work "$WORK/din_parity" --seeds 3 \\
        --json-out "$WORK/din_parity/runs.jsonl"
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bench_models import run_fuxictr, run_ours
from mutualctr.data.store import EncodedStore

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_latest_small"
HIDDEN_UNITS = (200, 80)
ATTENTION_UNITS = (64,)
HISTORIES = ("hist_item", "hist_cat")


@dataclass(frozen=True)
class Variant:
    """One trained model: ``model`` on ``side`` with these overrides / FuxiCTR options."""

    label: str
    model: str
    side: str  # "ours" or "fuxictr"
    overrides: dict[str, Any]
    options: tuple[str, ...] = ()


def variants() -> tuple[Variant, ...]:
    units = {"hidden_units": list(HIDDEN_UNITS)}
    fuxi_units = ("--hidden-units", ",".join(map(str, HIDDEN_UNITS)))
    attention = ",".join(map(str, ATTENTION_UNITS))
    return (
        Variant("DIN ours", "din", "ours",
                {**units, "attention_units": list(ATTENTION_UNITS)}),
        Variant("DIN FuxiCTR", "din", "fuxictr", {},
                (*fuxi_units, "--attention-units", attention)),
        Variant("DIEN ours", "dien", "ours", {**units, "aux_loss_alpha": 0.0}),
        Variant("DIEN FuxiCTR", "dien", "fuxictr", {}, (*fuxi_units, "--aux-loss-alpha", "0")),
        Variant("DNN, histories averaged", "dnn", "ours", units),
        Variant("DNN, no histories", "dnn", "ours",
                {**units, "exclude_fields": list(HISTORIES)}),
    )


def first_genres(movielens: Path) -> dict[str, str]:
    with gzip.open(movielens / "movies.csv.gz", "rt", newline="") as f:
        return {row["movieId"]: row["genres"].split("|")[0] for row in csv.DictReader(f)}


def write_din_log(movielens: Path, out: Path, seed: int) -> tuple[Path, Path]:
    """``rows.csv`` (``user,time,item,cat,click``) and ``first.csv`` (``user,time,item,cat``),
    both sorted by time (stable), as the module docstring says."""
    with gzip.open(movielens / "ratings.csv.gz", "rt", newline="") as f:
        ratings = list(csv.DictReader(f))
    genre = first_genres(movielens)
    catalogue = np.array(sorted({r["movieId"] for r in ratings}))
    by_user: dict[str, list[tuple[int, int, str]]] = {}
    for line, r in enumerate(ratings):
        by_user.setdefault(r["userId"], []).append((int(r["timestamp"]), line, r["movieId"]))
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, int, str, int]] = []
    first: list[tuple[str, int, str]] = []
    for user, events in by_user.items():
        events.sort()
        touched = {item for _, _, item in events}
        first.append((user, events[0][0], events[0][2]))
        for time, _, item in events[1:]:
            negative = str(rng.choice(catalogue))
            while negative in touched:
                negative = str(rng.choice(catalogue))
            rows += [(user, time, item, 1), (user, time, negative, 0)]
    rows.sort(key=lambda r: r[1])
    first.sort(key=lambda e: e[1])
    out.mkdir(parents=True, exist_ok=True)
    rows_path, first_path = out / "rows.csv", out / "first.csv"
    with rows_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "time", "item", "cat", "click"])
        writer.writerows((u, t, i, genre[i], c) for u, t, i, c in rows)
    with first_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user", "time", "item", "cat"])
        writer.writerows((u, t, i, genre[i]) for u, t, i in first)
    return rows_path, first_path


def build_store(work: Path, movielens: Path, max_len: int, log_seed: int) -> Path:
    """The log written and prepared once (``mutualctr data prepare --split user-last``)."""
    store = work / f"store_len{max_len}_seed{log_seed}"
    if (store / "meta.json").is_file():
        return store
    rows, first = write_din_log(movielens, work / f"log_seed{log_seed}", log_seed)
    schema = work / f"schema_len{max_len}.yaml"
    schema.write_text(yaml.safe_dump({
        "label": "click",
        "fields": [{"name": n, "type": "categorical"} for n in ("user", "item", "cat")],
        "history": {"user": "user", "time": "time", "columns": ["item", "cat"],
                    "max_len": max_len, "events": "positive"},
    }))
    done = subprocess.run(
        [sys.executable, "-m", "mutualctr", "data", "prepare", str(rows), "--format", "csv",
         "--schema", str(schema), "--history-log", str(first), "--split", "user-last",
         "--out", str(store)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"data prepare failed ({done.returncode}):\n{done.stderr}")
    return store


def describe(store: EncodedStore) -> str:
    parts = []
    for split in ("train", "valid", "test"):
        arrays = store.split(split)
        lengths = (np.asarray(arrays.sequences[0]) > 0).sum(axis=1)
        parts.append(f"{split} {len(arrays):,d} rows (mean history {lengths.mean():.1f}, "
                     f"empty {np.mean(lengths == 0):.1%})")
    return ", ".join(parts)


def run(variant: Variant, store: EncodedStore, store_dir: Path, args: argparse.Namespace,
        seed: int) -> dict[str, Any]:
    if variant.side == "ours":
        return run_ours(variant.model, store, args.epochs, 1, variant.overrides, seed,
                        args.batch_size)
    return run_fuxictr(variant.model, store_dir, args.work, args.fuxi_python, args.epochs, 1,
                       variant.options, seed, args.batch_size)


def print_table(runs: list[dict[str, Any]]) -> None:
    """Mean ± sd over the seeds of test AUC and logloss per variant (markdown)."""
    print("| model | seeds | test AUC | test logloss | train rows/s |")
    print("| --- | --- | --- | --- | --- |")
    for v in variants():
        mine = [r for r in runs if r["label"] == v.label]
        if not mine:
            continue

        def stat(key: str, digits: int, mine: list[dict[str, Any]] = mine) -> str:
            values = [r[key] for r in mine]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"

        speed = statistics.mean(r["train_samples_per_s"] for r in mine)
        print(f"| {v.label} | {len(mine)} | {stat('test_auc', 4)} | {stat('test_logloss', 4)} "
              f"| {speed:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (absolute)")
    parser.add_argument("--movielens", type=Path, default=MOVIELENS)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--log-seed", type=int, default=0, help="negative sampling")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--fuxi-python", default=os.environ.get("FUXI_PYTHON", ""),
                        help="Python of the FuxiCTR 2.3.10 environment (default: $FUXI_PYTHON)")
    parser.add_argument("--json-out", type=Path, help="append each finished run here (JSON lines)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the runs in --json-out and exit")
    args = parser.parse_args()
    if args.table_only:
        print_table([json.loads(x) for x in args.json_out.read_text().splitlines()])
        return
    if not args.fuxi_python:
        raise SystemExit("--fuxi-python (or $FUXI_PYTHON) is required")
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    store_dir = build_store(args.work, args.movielens, args.max_len, args.log_seed)
    store = EncodedStore.open(store_dir)
    print(f"{describe(store)}; batch {args.batch_size}, at most {args.epochs} epochs, "
          f"1 thread, load at start {os.getloadavg()[0]:.1f}", flush=True)
    runs = []
    for seed in range(args.seeds):
        for v in variants():
            result = {"label": v.label, "seed": seed, **run(v, store, store_dir, args, seed),
                      "load": os.getloadavg()[0]}
            runs.append(result)
            print(f"seed {seed} {v.label:24s} AUC {result['test_auc']:.4f} logloss "
                  f"{result['test_logloss']:.4f} train {result['train_samples_per_s']:,.0f}/s "
                  f"(load {result['load']:.1f})", flush=True)
            if args.json_out:
                with args.json_out.open("a") as f:
                    f.write(json.dumps(result) + "\n")
    print_table(runs)


if __name__ == "__main__":
    main()
