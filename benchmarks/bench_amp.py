"""AUC parity and speed of bfloat16 autocast against float32, for every registry model.

    python benchmarks/bench_amp.py --rows 200000 --work "$WORK/bench_amp" \\
        [--models all] [--seeds 3] [--batch-size 2048] [--threads 1] [--json-out FILE]

One store (``mutualctr data synth`` rows, seed 0, prepared as ``bench_models.py`` does); each
model with its registry defaults is trained for one epoch per seed twice, ``train.amp: false``
and ``train.amp: true``, one after the other (same initialisation and batch order, so the two
runs of a seed differ only in precision), and evaluated on the test split. Printed per model:
test AUC and logloss, mean ± std over seeds, for each precision; the paired difference
(bfloat16 minus float32, mean ± std over seeds); the training rows/s ratio (bfloat16 over
float32). A model is flagged when bfloat16 loses more AUC than the seeds spread: the mean
paired difference is below minus the larger of 0.001 and the float32 AUC's std over seeds.
Such models belong in ``mutualctr.training.precision.FLOAT32_UNDER_AUTO``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench_models import build_store
from mutualctr import metrics
from mutualctr.data.store import EncodedStore
from mutualctr.models.registry import build_model, model_names
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.trainer import Trainer, seed_everything

PRECISIONS = {"float32": False, "bfloat16": True}  # train.amp of each side


def train_once(name: str, store: EncodedStore, seed: int, amp: bool,
               args: argparse.Namespace) -> dict[str, float]:
    """Test AUC, logloss and training rows/s of one run."""
    seed_everything(seed)
    model = build_model(name, store.feature_map)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=seed, device="cpu",
                         amp=amp, num_threads=args.threads)
    with open(os.devnull, "w") as quiet:
        trainer = Trainer(ModelGroup([model], [name]), IndependentObjective([name]), config,
                          log=quiet)
        result = trainer.fit(store.split("train"), store.split("valid"), store.split("test"))
    test = result.metrics["test"][name]
    return {"auc": test["auc"], "logloss": test["logloss"],
            "rows_per_second": result.history[0]["rows_per_second"]}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(name: str, runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Means, stds, the paired AUC difference and the speed ratio of one model's runs."""
    out: dict[str, Any] = {"model": name}
    for precision, results in runs.items():
        for key in ("auc", "logloss"):
            out[f"{key}_{precision}"] = _mean_std([r[key] for r in results])
    paired = [b["auc"] - f["auc"] for f, b in zip(runs["float32"], runs["bfloat16"], strict=True)]
    out["dauc"] = _mean_std(paired)
    speed = [b["rows_per_second"] / f["rows_per_second"]
             for f, b in zip(runs["float32"], runs["bfloat16"], strict=True)]
    out["speed_ratio"] = statistics.fmean(speed)
    spread = max(0.001, out["auc_float32"][1])
    out["flagged"] = out["dauc"][0] < -spread
    return out


def print_row(row: dict[str, Any]) -> None:
    def pm(pair: tuple[float, float], digits: int = 4) -> str:
        return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"

    print(f"| {row['model']} | {pm(row['auc_float32'])} | {pm(row['auc_bfloat16'])} | "
          f"{pm(row['dauc'])} | {pm(row['logloss_float32'])} | {pm(row['logloss_bfloat16'])} | "
          f"{row['speed_ratio']:.2f}x | {'**yes**' if row['flagged'] else 'no'} | "
          f"{os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_bench_amp")
    parser.add_argument("--models", default="all", help="comma-separated, or all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    store = EncodedStore.open(build_store(args.work, args.rows))
    names = model_names() if args.models == "all" else args.models.split(",")
    test = store.split("test")
    bayes = ("n/a" if test.prob is None
             else f"{metrics.binary_metrics(test.label, test.prob)['auc']:.4f}")
    print(f"{len(test):,} test rows (Bayes AUC {bayes}), batch {args.batch_size}, "
          f"{args.threads} thread(s), seeds {list(range(args.seeds))}", flush=True)
    print("| model | AUC float32 | AUC bfloat16 | dAUC (paired) | logloss float32 | "
          "logloss bfloat16 | rows/s bf16/fp32 | flagged | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    for name in names:
        runs: dict[str, list[dict[str, float]]] = {p: [] for p in PRECISIONS}
        for seed in range(args.seeds):
            for precision, amp in PRECISIONS.items():
                runs[precision].append(train_once(name, store, seed, amp, args))
        rows.append(summarise(name, runs) | {"runs": runs})
        print_row(rows[-1])
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
