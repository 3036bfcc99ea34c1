"""Run by ``tests/test_ddp.py`` under one ``torchrun`` launch: ``ddp_registry_driver.py STORE OUT``.

Trains every registry model at its default config, then each method's group (mutual learning
of two, EKTF with a DNN and a DIEN student, CETNet of DIN and DIEN), for a few DDP steps each on
the store ``STORE``, so the launch is paid once. Rank 0 writes ``OUT`` (JSON): per run, the error it
raised (None when it trained; DDP raises when a parameter got no gradient) and whether every
rank ended with identical weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mutualctr.data.store import EncodedStore
from mutualctr.distributed import ddp
from mutualctr.methods import cetnet, ektf, mutual
from mutualctr.methods import train as train_method
from mutualctr.methods.base import Method
from mutualctr.methods.members import MemberConfig
from mutualctr.models.registry import model_names
from mutualctr.training.config import TrainConfig
from mutualctr.training.trainer import fit, seed_everything

BATCH, STEPS = 32, 3  # rows per rank and step; DDP finds a parameter without gradient at step 2
TRAIN = TrainConfig(epochs=1, batch_size=BATCH, max_train_rows=2 * BATCH * STEPS, num_threads=1,
                    device="cpu")


def weights_digest(*modules: nn.Module) -> str:
    """sha256 of every tensor of ``modules``' state dicts, in order."""
    digest = hashlib.sha256()
    for module in modules:
        for tensor in module.state_dict().values():
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def train_briefly(
    method: Method[Any], config: Any, store: EncodedStore, dist: ddp.DistInfo,
) -> dict[str, Any]:
    """A few DDP steps of what ``method`` builds; the error raised, if any, and whether every
    rank ended with the same weights."""
    seed_everything(TRAIN.seed)
    built = method.build(method.resolve(config), store)
    try:
        fit(built.group, built.objective, store.split("train"), store.split("valid"), TRAIN,
            dist=dist, log=io.StringIO())
    except RuntimeError as err:
        return {"error": str(err)[:500], "same_weights": None}
    digests = ddp.gather_objects(weights_digest(built.group, built.objective), dist)
    return {"error": None, "same_weights": len(set(digests)) == 1}


def main(store_dir: str, out: str) -> None:
    store = EncodedStore.open(store_dir)
    dist = ddp.init(torch.device("cpu"))
    results = {
        name: train_briefly(train_method.METHOD,
                            train_method.IndependentConfig(model=name, train=TRAIN), store, dist)
        for name in model_names()
    }
    # two members of one architecture: the mutual method stacks them (BatchedModelGroup)
    pair = [MemberConfig(model="deepfm"), MemberConfig(model="deepfm")]
    results["mutual"] = train_briefly(mutual.METHOD, mutual.MutualConfig(members=pair,
                                                                         train=TRAIN),
                                      store, dist)
    # DIEN among EKTF's students and CETNet's members: its next-behaviour loss must reach its
    # auxiliary network under every method, or DDP finds parameters without a gradient
    students = [*ektf.mlp_students(1), MemberConfig(model="dien")]
    results["ektf"] = train_briefly(
        ektf.METHOD, ektf.EKTFConfig(students=students, train=TRAIN), store, dist)
    sequence_pair = [MemberConfig(model="din"), MemberConfig(model="dien")]
    results["cetnet"] = train_briefly(
        cetnet.METHOD, cetnet.CETNetConfig(members=sequence_pair, train=TRAIN), store, dist)
    if dist.is_main:
        Path(out).write_text(json.dumps(results, indent=1))
    ddp.shutdown(dist)


if __name__ == "__main__":
    main(*sys.argv[1:])
    ddp.exit_without_teardown(0)  # as mutualctr's own entry point under torchrun
