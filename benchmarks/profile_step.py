"""Where a training step's time goes: the top ops by self CPU time (``torch.profiler``).

    python benchmarks/profile_step.py --model deepfm [--members 1] [--shape large]
        [--precision float32] [--steps 5] [--top 12] [--threads 1] [--system-allocator]

The step is ``bench_group.py``'s (the trainer's): one model under BCE, or a batched group of
``--members`` under the mutual-learning loss, on one of its shapes; profiled over ``--steps``
steps after three of warm-up. ``--system-allocator`` leaves glibc's allocator as it is instead
of keeping freed memory as the trainer does.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.profiler import ProfilerActivity, profile

from bench_group import make_shape, random_batch, training_step
from mutualctr.models.registry import build_model
from mutualctr.training.allocator import retain_freed_memory
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--shape", default="large", help="small, criteo or large")
    parser.add_argument("--precision", default="float32", help="float32 or bfloat16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--system-allocator", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.system_allocator:
        retain_freed_memory()
    shape = make_shape(args.shape)
    batch = random_batch(shape)
    names = [f"m{i}" for i in range(args.members)]
    torch.manual_seed(0)
    models = [build_model(args.model, shape.feature_map) for _ in names]
    if args.members == 1:
        group: torch.nn.Module = ModelGroup(models, names)
        objective = IndependentObjective(names)
    else:
        group, objective = BatchedModelGroup(models, names), MutualObjective(names)
    step = training_step(group, objective, batch, getattr(torch, args.precision))
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.members} x {args.model}, {args.shape}, {args.precision}, "
          f"{'glibc default' if args.system_allocator else 'freed memory kept'}, load "
          f"{os.getloadavg()[0]:.1f}: {total / 1000 / args.steps:.1f} ms self CPU per step")
    print("| op | ms per step | share |")
    print("| --- | --- | --- |")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"| `{e.key}` | {e.self_cpu_time_total / 1000 / args.steps:.1f} | "
              f"{e.self_cpu_time_total / total:.0%} |")


if __name__ == "__main__":
    main()
