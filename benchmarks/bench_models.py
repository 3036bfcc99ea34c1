"""Model parity and speed: mutualctr's DeepFM, DCN, PNN and FiBiNET against FuxiCTR 2.3.10's.

Both sides train on the same encoded store (1M rows from ``mutualctr data synth``, random 8:1:1
split, Criteo encoding with min count 10) with the same setup: embedding 16, MLP [400, 200, 100],
batch 4096, Adam lr 1e-3, no L2, gradient norm clipped at 10, 1 epoch, 2 CPU threads, the
checkpoint with the best validation AUC restored, test AUC reported. FuxiCTR runs through its own
virtual environment (``benchmarks/fuxictr_reference/run_models.py``: its ``BaseModel``, layers
and parquet ``RankDataLoader``); ours through :class:`mutualctr.training.trainer.Trainer`.
The two are interleaved model by model, so a change in the shared machine's load hits both.

Speeds: training samples/s over the epoch's training steps (validation excluded), evaluation
samples/s of a prediction pass over the test split with batches of 4096 on both sides. The Bayes
AUC of the test split (from the generator's true probabilities) is the ceiling.

Usage::

    python benchmarks/bench_models.py --rows 1000000 --work "$WORK/bench_models" \\
        --fuxi-python "$FUXIENV/bin/python"

``--work`` must be absolute (the FuxiCTR side runs inside ``benchmarks/fuxictr_reference``); the
FuxiCTR environment ``$FUXIENV`` is set up as benchmarks/README.md says.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutualctr import metrics
from mutualctr.data.store import EncodedStore
from mutualctr.data.synthetic import generate_criteo_synthetic
from mutualctr.models.registry import build_model
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.trainer import Trainer, seed_everything

REFERENCE_DIR = Path(__file__).resolve().parent / "fuxictr_reference"
MODELS = ("deepfm", "dcn", "pnn", "fibinet")
EMBEDDING_DIM, HIDDEN_UNITS, BATCH_SIZE, LR, SEED = 16, (400, 200, 100), 4096, 1e-3, 2024


def build_store(work: Path, rows: int) -> Path:
    """Generate ``rows`` rows (seed 0) with their probabilities and prepare the store once."""
    raw, probs, store = work / f"synth_{rows}.txt", work / f"synth_{rows}.probs", work / "store"
    if not raw.is_file():
        generate_criteo_synthetic(raw, rows, seed=0, probs_out=probs)
    if not (store / "meta.json").is_file():
        done = subprocess.run(
            [sys.executable, "-m", "mutualctr", "data", "prepare", "--format", "criteo",
             str(raw), "--probs", str(probs), "--out", str(store)],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"data prepare failed ({done.returncode}):\n{done.stderr}")
    return store


def run_ours(name: str, store: EncodedStore, epochs: int, threads: int,
             overrides: dict[str, Any] | None = None, seed: int = SEED,
             batch_size: int = BATCH_SIZE, amp: bool | str = False) -> dict[str, Any]:
    """Train ``name`` (embedding 16, MLP [400, 200, 100], then ``overrides``) and test it;
    ``amp`` as ``train.amp`` (default float32, as FuxiCTR's side; ``"auto"``: the product's
    default, bfloat16 where the CPU has it; bench_amp.py compares the two)."""
    seed_everything(seed)
    model = build_model(name, store.feature_map,
                        {"embedding_dim": EMBEDDING_DIM, "hidden_units": list(HIDDEN_UNITS),
                         **(overrides or {})})
    config = TrainConfig(epochs=epochs, batch_size=batch_size, eval_batch_size=batch_size,
                         lr=LR, embedding_l2=0.0, net_l2=0.0, grad_clip=10.0, seed=seed,
                         device="cpu", num_threads=threads, amp=amp)
    with open(os.devnull, "w") as quiet:
        trainer = Trainer(ModelGroup([model], [name]), IndependentObjective([name]), config,
                          log=quiet)
        trainer.fit(store.split("train"), store.split("valid"))
    test = store.split("test")
    start = time.perf_counter()
    predictions, labels = trainer.predict(test)
    eval_seconds = time.perf_counter() - start
    scores = metrics.binary_metrics(labels, predictions[name])
    train_speed = float(np.mean([r["rows_per_second"] for r in trainer.history]))
    return {"model": name, "test_auc": scores["auc"], "test_logloss": scores["logloss"],
            "precision": trainer.history[-1]["precision"], "train_samples_per_s": train_speed,
            "eval_samples_per_s": len(test) / eval_seconds}


def run_fuxictr(name: str, store: Path, work: Path, fuxi_python: str, epochs: int,
                threads: int, options: tuple[str, ...] = (), seed: int = SEED,
                batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    """``fuxictr_reference/run_models.py`` on ``store`` with the same setup as :func:`run_ours`
    (``options``: further command-line options of it, e.g. ``--hidden-units 200,80``)."""
    command = [fuxi_python, str(REFERENCE_DIR / "run_models.py"), "--store", str(store),
               "--work", str(work / "fuxictr"), "--models", name, "--epochs", str(epochs),
               "--threads", str(threads), "--embedding-dim", str(EMBEDDING_DIM),
               "--hidden-units", ",".join(map(str, HIDDEN_UNITS)),
               "--batch-size", str(batch_size), "--lr", str(LR), "--seed", str(seed), *options]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REFERENCE_DIR)
    if done.returncode != 0:
        raise SystemExit(f"FuxiCTR {name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_bench_models",
                        help="scratch folder (absolute; default in the system temp folder)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fuxi-python", default=os.environ.get("FUXI_PYTHON", ""),
                        help="Python of the FuxiCTR 2.3.10 environment (default: $FUXI_PYTHON; "
                             "'' skips FuxiCTR)")
    parser.add_argument("--amp", default=False, type=lambda v: v if v == "auto" else v == "true",
                        choices=[False, True, "auto"],
                        help="our side's train.amp: false (default, float32 as FuxiCTR's), "
                             "auto (the product's default) or true")
    parser.add_argument("--json-out", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    store_dir = build_store(args.work, args.rows)
    store = EncodedStore.open(store_dir)
    test = store.split("test")
    bayes = metrics.auc(np.asarray(test.label), np.asarray(test.prob))
    print(f"{args.rows:,d} rows, test {len(test):,d} rows, Bayes AUC of test {bayes:.4f}, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for name in args.models.split(","):
        ours = run_ours(name, store, args.epochs, args.threads, amp=args.amp)
        fuxi = (run_fuxictr(name, store_dir, args.work, args.fuxi_python, args.epochs,
                            args.threads) if args.fuxi_python else None)
        results.append({"ours": ours, "fuxictr": fuxi, "load": os.getloadavg()[0]})
        print_row(ours, fuxi, results[-1]["load"])
    if args.json_out:
        args.json_out.write_text(json.dumps({"bayes_auc": bayes, "results": results}, indent=2))


def print_row(ours: dict[str, Any], fuxi: dict[str, Any] | None, load: float) -> None:
    line = (f"{ours['model']:8s} AUC ours {ours['test_auc']:.4f} ({ours['precision']})"
            f"  train {ours['train_samples_per_s']:>9,.0f}/s"
            f"  eval {ours['eval_samples_per_s']:>9,.0f}/s")
    if fuxi is not None:
        line += (f" | FuxiCTR AUC {fuxi['test_auc']:.4f}"
                 f"  train {fuxi['train_samples_per_s']:>9,.0f}/s"
                 f"  eval {fuxi['eval_samples_per_s']:>9,.0f}/s"
                 f" | dAUC {ours['test_auc'] - fuxi['test_auc']:+.4f}"
                 f"  train x{ours['train_samples_per_s'] / fuxi['train_samples_per_s']:.2f}"
                 f"  eval x{ours['eval_samples_per_s'] / fuxi['eval_samples_per_s']:.2f}")
    print(f"{line}  (load {load:.1f})", flush=True)


if __name__ == "__main__":
    main()
