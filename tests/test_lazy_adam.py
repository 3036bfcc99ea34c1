"""``train.optimizer: lazy_adam``: sparse embedding gradients and the row-wise Adam update."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from mutualctr.cli import main
from mutualctr.config import from_dict
from mutualctr.data.loader import BatchLoader
from mutualctr.distributed.ddp import DistInfo, grad_norm
from mutualctr.errors import ConfigError
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.optimizers import LazyAdam, build_optimizer, clip_gradients_
from mutualctr.training.trainer import Trainer
from training_support import (
    GROUP_NAMES,
    STORE_SHAPES,
    group_batch,
    group_models,
    synthetic_split,
    tiny_model,
)


def _table_gradient(group: torch.nn.Module, lazy: bool) -> torch.Tensor:
    optimizer_config = from_dict(TrainConfig, {"optimizer": "lazy_adam" if lazy else "adam"})
    build_optimizer(group, optimizer_config)  # sets the lookups' gradient kind
    group.zero_grad(set_to_none=True)
    names = list(group.names)
    objective = MutualObjective(names) if len(names) > 1 else IndependentObjective(names)
    objective(group(group_batch(0)), group_batch(0)).loss.backward()
    return next(p.grad for n, p in group.named_parameters() if n.endswith("table.weight"))


@pytest.mark.parametrize("kind", ["one model", "batched group"])
def test_sparse_gradient_holds_the_dense_gradient_at_the_looked_up_rows(kind: str) -> None:
    def group() -> torch.nn.Module:
        if kind == "one model":
            return ModelGroup(group_models(count=1), GROUP_NAMES[:1])
        return BatchedModelGroup(group_models(), GROUP_NAMES)

    dense = _table_gradient(group(), lazy=False)
    sparse = _table_gradient(group(), lazy=True)
    assert sparse.is_sparse and not dense.is_sparse
    assert sparse.shape == dense.shape  # [R, D], or the group's [R, N, D]
    torch.testing.assert_close(sparse.to_dense(), dense)
    batch = group_batch(0)  # rows: categorical ids at offsets 0, 30, 60, 90; the tags at 120
    looked_up = torch.cat([(batch.categorical + torch.tensor([0, 30, 60, 90])).flatten(),
                           (batch.sequences[0] + 120).flatten()]).unique()
    assert torch.equal(sparse._indices()[0], looked_up)  # each row once, in order


def _sparse_rows(rows: list[int], values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape,
                                   check_invariants=True).coalesce()


def test_lazy_adam_is_adam_when_every_row_has_a_gradient() -> None:
    torch.manual_seed(0)
    start = torch.randn(5, 3)
    lazy_w, dense_w = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    lazy = LazyAdam([{"params": [lazy_w], "weight_decay": 0.1}], lr=0.05)
    dense = torch.optim.Adam([{"params": [dense_w], "weight_decay": 0.1}], lr=0.05)
    for _ in range(4):
        grad = torch.randn(5, 3)
        lazy_w.grad = _sparse_rows([0, 1, 2, 3, 4], grad, (5, 3))
        dense_w.grad = grad
        lazy.step()
        dense.step()
    torch.testing.assert_close(lazy_w.detach(), dense_w.detach())
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(lazy.state[lazy_w][key], dense.state[dense_w][key])
    assert float(lazy.state[lazy_w]["step"]) == 4


def test_lazy_adam_moves_only_the_rows_with_a_gradient_by_adams_update() -> None:
    lr, eps, decay = 0.1, 1e-8, 0.5
    w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 0.5], [3.0, 1.0]]))
    optimizer = LazyAdam([{"params": [w], "weight_decay": decay}], lr=lr, eps=eps)
    # step 1, row 1 only: g = 0.2 + 0.5 * 0.5 = 0.45 and -0.4 + 0.25 = -0.15; Adam's first
    # step is lr * g / (|g| + eps) after bias correction, i.e. lr * sign(g)
    w.grad = _sparse_rows([1], torch.tensor([[0.2, -0.4]]), (3, 2))
    optimizer.step()
    expected = torch.tensor([[1.0, -2.0], [0.4, 0.6], [3.0, 1.0]])
    torch.testing.assert_close(w.detach(), expected)
    state = optimizer.state[w]
    torch.testing.assert_close(state["exp_avg"],
                               torch.tensor([[0.0, 0.0], [0.045, -0.015], [0.0, 0.0]]))
    torch.testing.assert_close(state["exp_avg_sq"],
                               torch.tensor([[0.0, 0.0], [0.45**2, 0.15**2], [0.0, 0.0]]) * 1e-3)
    # step 2, row 2 only (its first gradient, at global step 2): g = 1 + 0.5 * 3 = 2.5 and
    # -1 + 0.5 = -0.5; m = 0.1 g, v = 0.001 g^2, bias corrections 1 - 0.9^2, 1 - 0.999^2
    w.grad = _sparse_rows([2], torch.tensor([[1.0, -1.0]]), (3, 2))
    optimizer.step()
    g = torch.tensor([2.5, -0.5])
    m, v = 0.1 * g, 1e-3 * g**2
    step = lr / (1 - 0.9**2) * m / (v.sqrt() / (1 - 0.999**2) ** 0.5 + eps)
    expected[2] = torch.tensor([3.0, 1.0]) - step
    torch.testing.assert_close(w.detach(), expected)  # rows 0 and 1 did not move
    torch.testing.assert_close(state["exp_avg"][1], torch.tensor([0.045, -0.015]))


def test_a_dense_gradient_takes_the_fused_adam_step() -> None:
    torch.manual_seed(1)
    start = torch.randn(4)
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    lazy, dense = LazyAdam([a], lr=0.01), torch.optim.Adam([b], lr=0.01, fused=True)
    for _ in range(3):
        a.grad = b.grad = torch.randn(4)
        lazy.step()
        dense.step()
    torch.testing.assert_close(a.detach(), b.detach())


def test_batched_group_under_lazy_adam_trains_as_separate_models() -> None:
    config = from_dict(TrainConfig, {"optimizer": "lazy_adam", "lr": 0.01,
                                     "embedding_l2": 1e-3, "grad_clip": 0.0})

    def train(group: torch.nn.Module) -> torch.nn.Module:
        objective = MutualObjective(GROUP_NAMES)
        optimizer = build_optimizer(group, config)
        assert isinstance(optimizer, LazyAdam)
        for step in range(3):
            optimizer.zero_grad(set_to_none=True)
            objective(group(group_batch(step)), group_batch(step)).loss.backward()
            optimizer.step()
        return group

    plain = train(ModelGroup(group_models(), GROUP_NAMES))
    batched = train(BatchedModelGroup(group_models(), GROUP_NAMES))
    for i, model in enumerate(plain.models):
        for key, value in model.state_dict().items():
            torch.testing.assert_close(batched.member_state_dict(i)[key], value,
                                       rtol=1e-4, atol=1e-5)


def _trainer() -> Trainer:
    config = from_dict(TrainConfig, {"optimizer": "lazy_adam", "batch_size": 50,
                                     "grad_clip": 0.5, "lr": 0.01, "device": "cpu"})
    names = ["a", "b"]
    group = ModelGroup([tiny_model(0), tiny_model(1)], names)
    return Trainer(group, MutualObjective(names), config, log=io.StringIO())


def test_trainer_steps_resume_from_a_state_dict_to_the_same_weights() -> None:
    batches = list(BatchLoader(synthetic_split(300, 3), 50).batches(0))
    straight = _trainer()
    for batch in batches:
        straight._train_step(batch)
    first = _trainer()
    for batch in batches[:3]:
        first._train_step(batch)
    saved = first.state_dict()  # the random state is global: saved before the next build
    resumed = _trainer()
    resumed.load_state_dict(saved)
    for batch in batches[3:]:
        resumed._train_step(batch)
    for key, value in straight.group.state_dict().items():
        torch.testing.assert_close(resumed.group.state_dict()[key], value)


def test_gradient_norm_and_clipping_read_sparse_gradients_as_their_dense_form() -> None:
    dense_grad = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    table, net = torch.nn.Parameter(torch.zeros(4, 2)), torch.nn.Parameter(torch.zeros(1))
    table.grad = _sparse_rows([1, 3, 1], torch.tensor([[1.0, 0.0], [0.0, 4.0], [2.0, 0.0]]),
                              (4, 2))  # row 1 twice: coalesced to 3.0
    net.grad = torch.tensor([12.0])
    norm = grad_norm([table, net], DistInfo())
    assert float(norm) == pytest.approx(13.0)  # sqrt(3^2 + 4^2 + 12^2)
    clip_gradients_([table, net], 1.3, norm)
    torch.testing.assert_close(table.grad.to_dense(), dense_grad * 0.1, rtol=1e-5, atol=0)
    torch.testing.assert_close(net.grad, torch.tensor([1.2]), rtol=1e-5, atol=0)


def test_lazy_adam_under_torchrun_is_refused() -> None:
    config = from_dict(TrainConfig, {"optimizer": "lazy_adam"})
    with pytest.raises(ConfigError, match="lazy_adam runs in one process"):
        Trainer(ModelGroup([tiny_model(0)], ["a"]), IndependentObjective(["a"]), config,
                dist=DistInfo(rank=0, world_size=2))


@pytest.mark.parametrize(("store_kind", "model"), [("criteo, all categorical", "deepfm"),
                                                   ("categorical and numeric", "deepfm"),
                                                   ("multi-hot and history", "din")])
def test_cli_trains_with_lazy_adam_as_well_as_with_adam_on_each_store_shape(
    store_kind: str, model: str, tmp_path: Path,
) -> None:
    store = STORE_SHAPES[store_kind](tmp_path / "data", 3000)
    auc = {}
    for optimizer in ("adam", "lazy_adam"):
        out = tmp_path / optimizer
        assert main(["train", "--data", str(store), "--model", model, "--out", str(out),
                     "--epochs", "2", "--set", f"train.optimizer={optimizer}",
                     "--set", "train.batch_size=100", "--set", "train.num_threads=1"]) == 0
        auc[optimizer] = json.loads((out / "metrics.json").read_text())["test"][model]["auc"]
    assert auc["lazy_adam"] > 0.55
    assert auc["lazy_adam"] == pytest.approx(auc["adam"], abs=0.03)
