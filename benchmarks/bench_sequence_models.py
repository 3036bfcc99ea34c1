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

``--steps-against REV --store DIR`` times our training step instead, before and after a
change: the sequence layers and models of git revision ``REV`` (``layers/sequence.py``,
``din.py``, ``dien.py``, ``behaviour.py`` read with ``git show``) against the working tree's, on
the same batch of ``DIR`` and the same initial weights, in one process, round-robin
(``bench_group.time_steps``: median CPU seconds of this process, so other jobs' load counts
less than in wall time), one thread; ``--profile`` adds the top ops of each side
(``torch.profiler``, self CPU time)::

    python benchmarks/bench_sequence_models.py --steps-against d16d192 --store DIR \\
        --batch-size 1024 --profile
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from bench_group import time_steps, training_step
from bench_models import print_row, run_fuxictr, run_ours
from mutualctr import metrics
from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.models.registry import build_model
from mutualctr.training.allocator import retain_freed_memory
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective

MODELS = ("din", "dien")
HIDDEN_UNITS = (200, 80)
REPOSITORY = Path(__file__).resolve().parents[1]
SEQUENCE_MODULES = ("models/layers/sequence.py", "models/din.py", "models/dien.py",
                    "models/behaviour.py")


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


def modules_at(revision: str) -> list[types.ModuleType]:
    """:data:`SEQUENCE_MODULES` as they were at ``revision``, executed as fresh modules."""
    modules = []
    for path in SEQUENCE_MODULES:
        source = subprocess.run(["git", "show", f"{revision}:src/mutualctr/{path}"],
                                cwd=REPOSITORY, capture_output=True, text=True, check=True).stdout
        module = types.ModuleType(f"{Path(path).stem}_at_{revision}")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
        modules.append(module)
    return modules


def bind_methods_of(model: torch.nn.Module, modules: list[types.ModuleType]) -> None:
    """Give every submodule whose class the old ``modules`` define that class's methods (the
    computation of the old revision on the same parameters); construction is left as is."""
    classes = {name: value for m in modules for name, value in vars(m).items()
               if inspect.isclass(value) and issubclass(value, torch.nn.Module)
               and value.__module__ == m.__name__}  # not what they import
    for sub in model.modules():
        old = classes.get(type(sub).__name__)
        for name, function in vars(old).items() if old is not None else ():
            if inspect.isfunction(function) and not name.startswith("__") and name not in (
                    "build", "init_weights"):
                setattr(sub, name, types.MethodType(function, sub))


def compare_steps(args: argparse.Namespace) -> None:
    """Training steps per second of :data:`MODELS` at ``args.steps_against`` and now."""
    retain_freed_memory()
    store = EncodedStore.open(args.store)
    batch = next(iter(BatchLoader(store.split("train"), args.batch_size, shuffle=True,
                                  seed=0).batches(0)))
    old_modules = modules_at(args.steps_against)
    lengths = float((batch.sequences[0] > 0).sum(1).float().mean())
    print(f"batch {len(batch.label)} of {args.store} (mean history {lengths:.1f} of "
          f"{batch.sequences[0].shape[1]}), 1 thread, load {os.getloadavg()[0]:.1f}", flush=True)
    print("| model | before (rows/s) | after (rows/s) | after / before | max abs diff of logits |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        overrides = {"embedding_dim": 16, "hidden_units": list(HIDDEN_UNITS)}
        if name == "dien":
            overrides["aux_loss_alpha"] = args.aux_loss_alpha
        models = {}
        for side in ("before", "after"):
            torch.manual_seed(0)
            models[side] = build_model(name, store.feature_map, overrides)
        bind_methods_of(models["before"], old_modules)
        with torch.no_grad():
            logits = [models[side].eval()(batch).logit for side in ("before", "after")]
        diff = float((logits[0] - logits[1]).abs().max())
        steps = {side: training_step(ModelGroup([m.train()], [name]),
                                     IndependentObjective([name]), batch, torch.float32)
                 for side, m in models.items()}
        seconds = time_steps(steps, args.repeats)
        rows = {side: len(batch.label) / s for side, s in seconds.items()}
        print(f"| {name} | {rows['before']:,.0f} | {rows['after']:,.0f} | "
              f"{rows['after'] / rows['before']:.2f}x | {diff:.1e} |", flush=True)
        if args.profile:
            for side, step in steps.items():
                print_profile(f"{name} {side}", step, args.top)


def print_profile(title: str, step: Any, top: int) -> None:
    """The ``top`` ops of three steps by self CPU time (after one of warm-up)."""
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n{title}: {total / 3000:.1f} ms self CPU per step (wall, under the load)")
    print("| op | calls per step | share |\n| --- | --- | --- |")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| `{e.key}` | {e.count // 3} | {e.self_cpu_time_total / total:.0%} |")


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
    parser.add_argument("--steps-against", metavar="REV",
                        help="time training steps at this git revision and now (see above)")
    parser.add_argument("--store", type=Path, help="the store of --steps-against")
    parser.add_argument("--repeats", type=int, default=15, help="--steps-against: steps timed")
    parser.add_argument("--profile", action="store_true", help="--steps-against: top ops")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    if args.steps_against:
        torch.set_num_threads(1)
        compare_steps(args)
        return
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
