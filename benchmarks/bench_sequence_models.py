"""Sequence-model parity and speed: mutualctr's DIN and DIEN against FuxiCTR 2.3.10's.

Both sides train on the same encoded store: ``mutualctr data synth --sequences`` (a click log
whose clicks depend on the user's earlier clicks, with true probabilities), prepared with its
schema and a time split 8:1:1, so every row carries its user's last 50 clicked items and
categories (``hist_item``/``hist_category``, sharing the ``item``/``category`` ids). The setup
is the same on both sides: embedding 16, MLP [200, 80], the batch size asked (default 4096, as
``bench_models.py``), Adam lr 1e-3, no L2, gradient norm clipped at 10, the epochs asked, the
torch threads asked (default 2; 1 is steadier on a loaded machine), the checkpoint with the best
validation AUC restored, test AUC reported. DIN: attention MLP [64] with Dice, no softmax, no
batch norm. DIEN: AUGRU, bilinear attention with softmax, batch norm in the MLP, the
auxiliary loss with ``--aux-loss-alpha`` (model_zoo DIEN's own auxiliary loss cannot run, see
``fuxictr_reference/models.py``; with alpha 0 both sides run without it).

Every model is trained once per seed on each side, interleaved (ours, then FuxiCTR, model by
model), so a change in the shared machine's load hits both; the AUCs are reported as mean and
standard deviation over the seeds, FuxiCTR's spread being the run-to-run noise a difference is
judged against. Speeds as in ``bench_models.py``: training samples/s over the training steps
(validation excluded; FuxiCTR's time includes its Ray data loader, as its users run it).

Usage::

    python benchmarks/bench_sequence_models.py --rows 500000 --seeds 3 \\
        --work "$WORK/bench_seq" --fuxi-python "$FUXIENV/bin/python"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_models import print_row, run_fuxictr, run_ours
from mutualctr import metrics
from mutualctr.data.store import EncodedStore

MODELS = ("din", "dien")
HIDDEN_UNITS = (200, 80)


def build_store(work: Path, rows: int) -> Path:
    """Generate ``rows`` rows (seed 0) with their probabilities and prepare the store once."""
    raw, probs, store = work / f"seq_{rows}.csv", work / f"seq_{rows}.probs", work / "store"
    steps = []
    if not raw.is_file():
        steps.append(["data", "synth", "--sequences", "--rows", str(rows), "--seed", "0",
                      "--out", str(raw), "--probs", str(probs)])
    if not (store / "meta.json").is_file():
        steps.append(["data", "prepare", str(raw), "--format", "csv", "--schema",
                      str(raw.with_suffix(".schema.yaml")), "--probs", str(probs),
                      "--split", "time", "--time-column", "time", "--out", str(store)])
    for step in steps:
        done = subprocess.run([sys.executable, "-m", "mutualctr", *step],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mutualctr {step[1]} failed ({done.returncode}):\n{done.stderr}")
    return store


def model_options(name: str, aux_loss_alpha: float) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Our overrides and FuxiCTR's options for ``name`` beyond the shared setup."""
    shared = {"hidden_units": list(HIDDEN_UNITS)}
    units = ("--hidden-units", ",".join(map(str, HIDDEN_UNITS)))
    if name == "dien":
        return ({**shared, "aux_loss_alpha": aux_loss_alpha},
                (*units, "--aux-loss-alpha", str(aux_loss_alpha)))
    return shared, units


def summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over the seeds; the speed ratio of each seed's pair."""
    def stats(side: str, key: str) -> tuple[float, float]:
        values = [r[side][key] for r in runs]
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    out: dict[str, Any] = {"model": name, "seeds": len(runs)}
    for side in ("ours", "fuxictr"):
        if runs[0][side] is not None:
            out[side] = {key: stats(side, key) for key in ("test_auc", "train_samples_per_s")}
    if "fuxictr" in out:
        out["train_ratio"] = statistics.mean(
            r["ours"]["train_samples_per_s"] / r["fuxictr"]["train_samples_per_s"] for r in runs)
    return out


def print_summary(row: dict[str, Any]) -> None:
    (auc, auc_sd), (speed, _) = row["ours"]["test_auc"], row["ours"]["train_samples_per_s"]
    line = f"{row['model']:5s} {row['seeds']} seeds  AUC ours {auc:.4f} ± {auc_sd:.4f}"
    line += f"  train {speed:,.0f}/s"
    if "fuxictr" in row:
        (f_auc, f_sd), (f_speed, _) = (row["fuxictr"]["test_auc"],
                                       row["fuxictr"]["train_samples_per_s"])
        line += (f" | FuxiCTR AUC {f_auc:.4f} ± {f_sd:.4f}  train {f_speed:,.0f}/s"
                 f" | dAUC {auc - f_auc:+.4f}  train x{row['train_ratio']:.2f}")
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_bench_seq",
                        help="scratch folder (absolute; default in the system temp folder)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seeds", type=int, default=3, help="runs per model and side")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--aux-loss-alpha", type=float, default=1.0, help="DIEN, both sides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fuxi-python", default=os.environ.get("FUXI_PYTHON", ""),
                        help="Python of the FuxiCTR 2.3.10 environment (default: $FUXI_PYTHON; "
                             "'' skips FuxiCTR)")
    parser.add_argument("--json-out", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    store_dir = build_store(args.work, args.rows)
    store = EncodedStore.open(store_dir)
    test = store.split("test")
    bayes = metrics.auc(np.asarray(test.label), np.asarray(test.prob))
    print(f"{args.rows:,d} rows, test {len(test):,d} rows, Bayes AUC of test {bayes:.4f}, "
          f"batch {args.batch_size}, {args.threads} threads, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    summaries = []
    for name in args.models.split(","):
        overrides, options = model_options(name, args.aux_loss_alpha)
        runs = []
        for seed in range(2024, 2024 + args.seeds):
            ours = run_ours(name, store, args.epochs, args.threads, overrides, seed,
                            args.batch_size)
            fuxi = (run_fuxictr(name, store_dir, args.work, args.fuxi_python, args.epochs,
                                args.threads, options, seed, args.batch_size)
                    if args.fuxi_python else None)
            runs.append({"seed": seed, "ours": ours, "fuxictr": fuxi,
                         "load": os.getloadavg()[0]})
            print_row(ours, fuxi, runs[-1]["load"])
        summaries.append({**summary(name, runs), "runs": runs})
    for row in summaries:
        print_summary(row)
    if args.json_out:
        args.json_out.write_text(json.dumps({"bayes_auc": bayes, "models": summaries},
                                            indent=2))


if __name__ == "__main__":
    main()
