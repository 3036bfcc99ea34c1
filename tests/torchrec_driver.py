"""Run by ``tests/test_torchrec.py`` under one ``torchrun`` launch: ``torchrec_driver.py STORE
OUT``.

For each sharding plan and each case (single models, and each method's group), on the store
``STORE`` (categorical, sequence with a shared history and numeric fields):

* ``lookup``: the group sharded against an unsharded copy of itself, same weights: the largest
  difference of their logits on every rank's own rows, before and after loading new weights
  through ``load_state_dict`` (the single-table form); on rank 0 whether the gathered
  ``state_dict`` has the copy's keys and its largest difference from it; and the relative
  difference between the sharded gradient norm (:func:`ddp.grad_norm`) and the copy's
  for the same loss (the sum of the logits, averaged over the ranks' rows);
* ``training``: a few steps of ``fit`` sharded against the same under DDP from the same start:
  the largest difference of the final weights and of the validation AUC.

Rank 0 writes ``OUT`` (JSON): ``{plan: {case: {...}}}``.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import get_total_norm

from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.distributed import ddp
from mutualctr.methods import cetnet, ektf, mutual
from mutualctr.methods import train as train_method
from mutualctr.methods.base import Method
from mutualctr.methods.members import MemberConfig
from mutualctr.training.config import TrainConfig
from mutualctr.training.trainer import fit, seed_everything

PLANS = ("table_wise", "row_wise")
ROWS, STEPS = 32, 4  # rows per rank and step
TRAIN = TrainConfig(epochs=1, batch_size=ROWS, max_train_rows=2 * ROWS * STEPS, num_threads=1,
                    device="cpu", lr=0.01, seed=7)
CASES: dict[str, tuple[Method[Any], Any]] = {
    "din": (train_method.METHOD, train_method.IndependentConfig(model="din")),
    "deepfm": (train_method.METHOD, train_method.IndependentConfig(model="deepfm")),
    "mutual": (mutual.METHOD, mutual.MutualConfig(
        members=[MemberConfig(model="deepfm"), MemberConfig(model="dcn")], batched=False)),
    # without batch norm: a bias before it has a gradient of rounding noise only, which Adam
    # turns into full steps, so its value after a few steps is noise in either mode
    "ektf": (ektf.METHOD, ektf.EKTFConfig(students=ektf.mlp_students(2, {"batch_norm": False}))),
    "cetnet": (cetnet.METHOD, cetnet.CETNetConfig(members=[{"model": "deepfm"}, {"model": "dcn"}])),
}


def largest_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0.0
               for k in a)


def build(case: str, store: EncodedStore, train: TrainConfig) -> Any:
    method, config = CASES[case]
    seed_everything(TRAIN.seed)
    return method.build(method.resolve(dataclasses.replace(config, train=train)), store)


def logit_gap(sharded: nn.Module, reference: nn.Module, rows: Any) -> float:
    """Largest logit difference over this rank's rows (every rank runs the same batches)."""
    sharded.eval()
    reference.eval()
    gap = 0.0
    with torch.no_grad():
        for batch in BatchLoader(rows, ROWS).batches(0):
            for mine, theirs in zip(sharded(batch), reference(batch), strict=True):
                gap = max(gap, float((mine.logit - theirs.logit).abs().max()))
    return gap


def logit_sum(group: nn.Module, rows: Any) -> torch.Tensor:
    return sum(output.logit.sum() for batch in BatchLoader(rows, len(rows)).batches(0)
               for output in group(batch))


def norm_gap(parallel: nn.Module, group: nn.Module, reference: nn.Module, valid: Any,
             dist: ddp.DistInfo) -> float:
    """Relative difference of the gradient norms: sharded (each rank's own rows, gradients
    averaged by DDP and TorchRec) against the copy given every rank's rows."""
    logit_sum(parallel, ddp.row_slice(valid, dist)).backward()
    ranks = [ddp.DistInfo(r, dist.world_size) for r in range(dist.world_size)]
    (sum(logit_sum(reference, ddp.row_slice(valid, r)) for r in ranks)
     / dist.world_size).backward()
    sharded = ddp.grad_norm([p for p in group.parameters() if p.grad is not None], dist)
    expected = get_total_norm([p.grad for p in reference.parameters() if p.grad is not None])
    group.zero_grad(set_to_none=True)
    return float((sharded - expected).abs() / expected)


def check_lookups(case: str, plan: str, store: EncodedStore,
                  dist: ddp.DistInfo) -> dict[str, Any]:
    group = build(case, store, TRAIN).group
    reference = copy.deepcopy(group)
    parallel = ddp.parallelize(group, plan, dist, torch.device("cpu"))
    valid = store.split("valid").map(lambda a: a[: 2 * ROWS * 2])
    rows = ddp.row_slice(valid, dist)
    result: dict[str, Any] = {"logits": logit_gap(group, reference, rows),
                              "grad_norm": norm_gap(parallel, group, reference, valid, dist)}
    state = group.state_dict()  # on every rank: the tables gather on rank 0
    if dist.is_main:
        expected = reference.state_dict()
        result["same_keys"] = sorted(state) == sorted(expected)
        result["state"] = largest_difference(expected, state) if result["same_keys"] else None
    torch.manual_seed(1)  # the same new weights on every rank
    with torch.no_grad():
        for param in reference.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    group.load_state_dict(reference.state_dict())
    result["logits_after_load"] = logit_gap(group, reference, rows)
    return result


def check_training(case: str, plan: str, store: EncodedStore,
                   dist: ddp.DistInfo) -> dict[str, Any]:
    runs = {}
    for sharding in ("none", plan):
        train = dataclasses.replace(TRAIN, sharding=sharding)
        built = build(case, store, train)
        fitted = fit(built.group, built.objective, store.split("train"), store.split("valid"),
                     train, dist=dist, log=io.StringIO())
        runs[sharding] = (built.group.state_dict(), fitted.metrics["valid"])
    (ddp, ddp_valid), (sharded, sharded_valid) = runs["none"], runs[plan]
    return {
        "weights": largest_difference(ddp, sharded) if dist.is_main else None,
        "auc": max(abs(ddp_valid[name]["auc"] - sharded_valid[name]["auc"])
                   for name in ddp_valid),
    }


def main(store_dir: str, out: str) -> None:
    store = EncodedStore.open(store_dir)
    dist = ddp.init(torch.device("cpu"))
    torch.set_num_threads(1)
    results = {
        plan: {case: {"lookup": check_lookups(case, plan, store, dist),
                      "training": check_training(case, plan, store, dist)}
               for case in CASES}
        for plan in PLANS
    }
    if dist.is_main:
        Path(out).write_text(json.dumps(results, indent=1))
    ddp.shutdown(dist)


if __name__ == "__main__":
    main(*sys.argv[1:])
    ddp.exit_without_teardown(0)  # as mutualctr's own entry point under torchrun
