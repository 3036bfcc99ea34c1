"""Training-step time of a group of N identical models: batched (stacked parameters under vmap)
against one model and against a naive loop over N separate models.

    python benchmarks/bench_group.py [--model deepfm] [--members 4] [--batch-size 4000]

A step is forward + mutual-learning loss + backward + Adam update, on a Criteo-shaped feature
map (13 numeric + 26 categorical fields). Prints milliseconds per step and the ratios; the goal
for 4 DeepFMs is batched <= 3x one model (naive is about 4x).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.models.registry import build_model
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.mutual import MutualObjective


def criteo_like_feature_map(vocab: int) -> FeatureMap:
    numeric = tuple(Feature(f"I{i}", "numeric") for i in range(1, 14))
    categorical = tuple(Feature(f"C{i}", "categorical", vocab_size=vocab) for i in range(1, 27))
    return FeatureMap(categorical + numeric)


def random_batch(feature_map: FeatureMap, size: int, vocab: int) -> Batch:
    return Batch(
        categorical=torch.randint(0, vocab, (size, len(feature_map.categorical))),
        numeric=torch.rand(size, len(feature_map.numeric)),
        sequences=(),
        label=torch.randint(0, 2, (size,)).float(),
    )


def time_steps(
    steps: dict[str, Callable[[], None]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call of each step after warm-up, timed round-robin so
    that load from other processes affects all alike. CPU time (all threads of this process)
    is the fairer measure on a busy machine."""
    for step in steps.values():
        for _ in range(3):
            step()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        name: (sorted(w for w, _ in t)[len(t) // 2], sorted(c for _, c in t)[len(t) // 2])
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deepfm")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--vocab", type=int, default=2000, help="ids per categorical field")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    feature_map = criteo_like_feature_map(args.vocab)
    batch = random_batch(feature_map, args.batch_size, args.vocab)
    names = [f"m{i}" for i in range(args.members)]
    models = [build_model(args.model, feature_map) for _ in names]
    bce = torch.nn.BCEWithLogitsLoss()

    single_opt = torch.optim.Adam(models[0].parameters(), lr=1e-3)

    def single_step() -> None:
        single_opt.zero_grad()
        bce(models[0](batch).logit, batch.label).backward()
        single_opt.step()

    objective = MutualObjective(names)
    naive_opt = torch.optim.Adam([p for m in models for p in m.parameters()], lr=1e-3)

    def naive_step() -> None:
        naive_opt.zero_grad()
        objective([m(batch) for m in models], batch).loss.backward()
        naive_opt.step()

    group = BatchedModelGroup(models, names)
    batched_opt = torch.optim.Adam(group.parameters(), lr=1e-3)

    def batched_step() -> None:
        batched_opt.zero_grad()
        objective(group(batch), batch).loss.backward()
        batched_opt.step()

    timings = time_steps(
        {"one": single_step, "naive": naive_step, "batched": batched_step}, args.repeats
    )
    print(
        f"{args.model}, batch {args.batch_size}, {args.members} members, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    one_wall, one_cpu = timings["one"]
    naive_wall, naive_cpu = timings["naive"]
    for label, key in (("one model", "one"), ("naive loop", "naive"), ("batched group", "batched")):
        wall, cpu = timings[key]
        line = f"{label:<14} wall {1000 * wall:8.1f} ms/step  cpu {1000 * cpu:8.1f} ms/step"
        if key != "one":
            line += (f"  ({wall / one_wall:.2f}x one model wall, {cpu / one_cpu:.2f}x cpu; "
                     f"{wall / naive_wall:.2f}x / {cpu / naive_cpu:.2f}x the naive loop)")
        print(line)

if __name__ == "__main__":
    main()
