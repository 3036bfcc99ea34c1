"""Training-step time of a group of N identical models: batched (stacked parameters under vmap)
against one model and against a naive loop over N separate models, on four data shapes.

    python benchmarks/bench_group.py [--model deepfm] [--members 4] [--shapes small,criteo,large]
        [--precision float32,bfloat16] [--threads 1] [--repeats 10] [--system-allocator]
        [--device cpu] [--optimizer adam,lazy_adam]

A step is what the trainer runs: forward (under bfloat16 autocast for ``bfloat16``), the
objective on float32 logits (BCE for one model, the mutual-learning loss for a group),
backward, gradient clipping and the trainer's optimizer with its L2 groups (``--optimizer``:
``adam``, the fused dense Adam, or ``lazy_adam``, which updates the embedding rows a batch looks
up; comma-separated to time both). Shapes:

* ``small``: 10 categorical fields, 10,853 values in all, batch 4096 (a MovieLens-sized store);
* ``criteo``: 13 numeric + 26 categorical fields of 2,000 values each, batch 4000;
* ``large``: 39 categorical fields, 610k values in all (the field sizes of the ``criteo``
  synthetic regime after ``--min-count 2``), batch 4000;
* ``xlarge``: the same fields scaled to 2.29M values (bench_scale.py's 10M-row store after
  ``--min-count 2``), batch 4000.

The steps of one shape are timed round-robin in one process (the same load for all), as the
median CPU time per step of this process (all its threads), and printed with the ratios to one
model. ``--system-allocator`` leaves glibc's allocator as it is instead of keeping freed memory
as the trainer does (mutualctr.training.allocator), to measure what that setting is worth.
With ``--device cuda`` the models and the batch live on the GPU and a step is timed by the wall
clock from a synchronised start to a synchronised end (the GPU's time, not the host's).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.distributed.ddp import DistInfo, grad_norm
from mutualctr.models.registry import build_model
from mutualctr.training.allocator import retain_freed_memory
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.base import Objective
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.optimizers import build_optimizer, clip_gradients_, coalesce_gradients_
from mutualctr.training.precision import run_group

# Field sizes of the ``criteo`` synthetic regime's 4M-row store after --min-count 2 (1.08M
# values); the ``large`` shape scales them to 610k values, as on its 2M-row store.
CRITEO_REGIME_VOCABS = (
    29, 80, 50, 38, 216, 143, 77, 44, 112, 18, 32, 26, 52, 32929, 585, 137105, 144237, 307, 27,
    49207, 635, 12, 26939, 32826, 147093, 29304, 29, 39226, 108342, 12, 52608, 41687, 15,
    140928, 21, 17, 44517, 108, 46457,
)
SMALL_VOCABS = (610, 9000, 20, 50, 30, 12, 7, 24, 100, 1000)
# values of the ``large`` shapes: a 2M-row store of the ``criteo`` regime, and the 10M-row store
# of bench_scale.py (both after --min-count 2)
LARGE_VALUES = {"large": 610_000, "xlarge": 2_290_000}


@dataclass(frozen=True)
class Shape:
    feature_map: FeatureMap
    batch_size: int

    @property
    def values(self) -> int:
        return sum(f.vocab_size for f in self.feature_map.categorical)


def _categorical(sizes: tuple[int, ...]) -> tuple[Feature, ...]:
    return tuple(Feature(f"C{i}", "categorical", vocab_size=n) for i, n in enumerate(sizes))


def make_shape(name: str) -> Shape:
    if name == "small":
        return Shape(FeatureMap(_categorical(SMALL_VOCABS)), 4096)
    if name == "criteo":
        numeric = tuple(Feature(f"I{i}", "numeric") for i in range(1, 14))
        return Shape(FeatureMap(_categorical((2000,) * 26) + numeric), 4000)
    if name in LARGE_VALUES:
        scale = LARGE_VALUES[name] / sum(CRITEO_REGIME_VOCABS)
        return Shape(FeatureMap(_categorical(tuple(max(3, round(n * scale))
                                                   for n in CRITEO_REGIME_VOCABS))), 4000)
    raise SystemExit(f"unknown shape {name!r}: small, criteo, large or xlarge")


def random_batch(shape: Shape, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    fm, size = shape.feature_map, shape.batch_size
    ids = [torch.randint(0, f.vocab_size, (size,), generator=g) for f in fm.categorical]
    return Batch(
        categorical=torch.stack(ids, dim=1),
        numeric=torch.rand(size, len(fm.numeric), generator=g),
        sequences=(),
        label=(torch.rand(size, generator=g) < 0.25).float(),
    )


def training_step(
    group: torch.nn.Module, objective: Objective, batch: Batch, dtype: torch.dtype,
    optimizer_name: str = "adam",
) -> Callable[[], None]:
    """The trainer's step for ``group``: loss on float32 outputs, backward, clipping,
    ``optimizer_name`` (``train.optimizer``)."""
    step_module = torch.nn.ModuleDict({"group": group, "objective": objective})
    config = TrainConfig(optimizer=optimizer_name)
    optimizer = build_optimizer(step_module, config)

    def step() -> None:
        loss = objective(run_group(group, batch, dtype), batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in step_module.parameters() if p.grad is not None]
        coalesce_gradients_(params)
        clip_gradients_(params, config.grad_clip, grad_norm(params, DistInfo()))
        optimizer.step()

    return step


def time_steps(steps: dict[str, Callable[[], None]], repeats: int,
               device: torch.device | None = None) -> dict[str, float]:
    """Median seconds per call of each step after warm-up, timed round-robin so that load from
    other processes affects all alike: CPU time of this process (all its threads) on the CPU,
    wall time between synchronisations on CUDA."""
    on_cuda = device is not None and device.type == "cuda"
    clock = time.perf_counter if on_cuda else time.process_time

    def timed(step: Callable[[], None]) -> float:
        if on_cuda:
            torch.cuda.synchronize(device)
        start = clock()
        step()
        if on_cuda:
            torch.cuda.synchronize(device)
        return clock() - start

    for step in steps.values():
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def bench_shape(args: argparse.Namespace, shape_name: str, dtype: torch.dtype,
                optimizer: str) -> None:
    shape = make_shape(shape_name)
    device = torch.device(args.device)
    batch = random_batch(shape).to(device)
    names = [f"m{i}" for i in range(args.members)]
    torch.manual_seed(0)
    models = [build_model(args.model, shape.feature_map).to(device) for _ in names]
    steps = {
        "one": training_step(ModelGroup(models[:1], names[:1]), IndependentObjective(names[:1]),
                             batch, dtype, optimizer),
        "naive": training_step(ModelGroup(models, names), MutualObjective(names), batch, dtype,
                               optimizer),
        "batched": training_step(BatchedModelGroup(models, names), MutualObjective(names),
                                 batch, dtype, optimizer),
    }
    timings = time_steps(steps, args.repeats, device)
    fm = shape.feature_map
    clock = "wall, cuda" if device.type == "cuda" else "cpu"
    print(f"{shape_name}: {fm.num_fields} fields, {shape.values:,} values, batch "
          f"{shape.batch_size}, {str(dtype).removeprefix('torch.')}, {optimizer}, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    one = timings["one"]
    for label, key in (("one model", "one"), ("naive loop", "naive"),
                       ("batched group", "batched")):
        line = f"  {label:<14} {1000 * timings[key]:8.1f} ms/step ({clock})"
        if key != "one":
            line += f"  {timings[key] / one:.2f}x one model"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--shapes", default="small,criteo,large")
    parser.add_argument("--precision", default="float32,bfloat16",
                        help="comma-separated: float32, bfloat16 (autocast)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--system-allocator", action="store_true",
                        help="do not keep freed memory as the trainer does")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--optimizer", default="adam",
                        help="comma-separated train.optimizer values: adam, lazy_adam")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kept = False if args.system_allocator else retain_freed_memory()
    print(f"{args.model}, {args.members} members, {args.threads} thread(s), torch "
          f"{torch.__version__}, freed memory {'kept' if kept else 'returned (glibc default)'}")
    for name in args.shapes.split(","):
        for precision in args.precision.split(","):
            for optimizer in args.optimizer.split(","):
                bench_shape(args, name, getattr(torch, precision), optimizer)


if __name__ == "__main__":
    main()
