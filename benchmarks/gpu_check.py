"""Training speed and AUC on one CUDA device, float32 against bfloat16 autocast.

    benchmarks/gpu_check.sh [--rows 1000000] [--batch-size 4096] [--json-out FILE]
    benchmarks/gpu_check.sh --dry-run     # the same code path on the CPU, tiny sizes

Trains for one epoch, on one synthetic store (``mutualctr data synth`` rows, seed 0, prepared
as ``bench_models.py`` does): DeepFM, DCN and DIN (when the registry has it; the store has no
behaviour sequences, so DIN runs on its field embeddings only) alone, and a batched group of
four DeepFMs under the mutual-learning objective, then DeepFM and the group again under
``train.optimizer: lazy_adam``; each with ``train.amp: false`` and ``auto``
(bfloat16 where the device supports it, except for the models ``auto`` keeps in float32, DIN
among them). Prints the precision that ran, training rows/s (the trainer's, over the epoch),
test AUC and the device the parameters ended on. The default sizes finish in a few minutes on
one GPU (store generation included); the wrapper stops it after 8.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench_models import build_store
from mutualctr.data.store import EncodedStore
from mutualctr.models.registry import build_model, model_names
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.trainer import Trainer, seed_everything

SEED = 2024


@dataclass(frozen=True)
class Job:
    """One training run: ``members`` copies of ``model`` (a batched mutual group when > 1),
    under ``train.optimizer`` ``optimizer``."""

    model: str
    members: int = 1
    optimizer: str = "adam"

    @property
    def label(self) -> str:
        name = self.model if self.members == 1 else f"{self.members} x {self.model} (batched)"
        return name if self.optimizer == "adam" else f"{name}, {self.optimizer}"


def jobs() -> list[Job]:
    singles = [m for m in ("deepfm", "dcn", "din") if m in model_names()]
    return [Job(m) for m in singles] + [
        Job("deepfm", members=4), Job("deepfm", optimizer="lazy_adam"),
        Job("deepfm", members=4, optimizer="lazy_adam"),
    ]


def run_job(job: Job, store: EncodedStore, amp: bool | str, args: argparse.Namespace,
            device: str) -> dict[str, Any]:
    """Train ``job`` for one epoch; its rows/s, test AUC and where its parameters ran."""
    seed_everything(SEED)
    names = [f"{job.model}_{i}" for i in range(job.members)]
    models = [build_model(job.model, store.feature_map) for _ in names]
    if job.members == 1:
        group: torch.nn.Module = ModelGroup(models, names)
        objective = IndependentObjective(names)
    else:
        group, objective = BatchedModelGroup(models, names), MutualObjective(names)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, eval_batch_size=args.batch_size,
                         seed=SEED, device=device, amp=amp, optimizer=job.optimizer)
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        trainer = Trainer(group, objective, config, log=quiet)
        result = trainer.fit(store.split("train"), store.split("valid"), store.split("test"))
    test = result.metrics["test"]
    return {
        "job": job.label, "precision": result.history[0]["precision"],
        "rows_per_second": result.history[0]["rows_per_second"],
        "test_auc": sum(test[n]["auc"] for n in names) / len(names),
        "device": str(next(trainer.group.parameters()).device),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_gpu_check")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--dry-run", action="store_true",
                        help="run on the CPU with 4,000 rows and batches of 256")
    args = parser.parse_args(argv)
    if args.dry_run:
        device, args.rows, args.batch_size = "cpu", 4_000, 256
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device (use --dry-run to exercise the script on the CPU)")
    else:
        device = "cuda"
    args.work.mkdir(parents=True, exist_ok=True)
    store = EncodedStore.open(build_store(args.work, args.rows))
    where = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    print(f"{where}, torch {torch.__version__}, {args.rows:,} rows, batch {args.batch_size}",
          flush=True)
    print("| job | precision | train rows/s | test AUC | device | seconds |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    results = []
    for job in jobs():
        for amp in (False, "auto"):
            r = run_job(job, store, amp, args, device)
            results.append(r)
            print(f"| {r['job']} | {r['precision']} | {r['rows_per_second']:,.0f} | "
                  f"{r['test_auc']:.4f} | {r['device']} | {r['seconds']:.1f} |", flush=True)
            if args.json_out is not None:
                args.json_out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
