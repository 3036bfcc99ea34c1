"""The papers' extra training losses of FINAL (block self-distillation) and DCNv3 (Tri-BCE)."""

from __future__ import annotations

import math

import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.models.base import ModelOutput, split_head_logits
from mutualctr.models.registry import build_model
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.auxiliary import auxiliary_loss
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.mutual import MutualObjective

FEATURE_MAP = FeatureMap(tuple(Feature(f"c{i}", "categorical", vocab_size=20) for i in range(3)))
SMALL = {
    "final": {"embedding_dim": 4, "block1_hidden_units": [8], "block2_hidden_units": [6]},
    "dcnv3": {"embedding_dim": 4},
}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def make_batch(size: int = 16) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(categorical=torch.randint(0, 20, (size, 3), generator=g),
                 numeric=torch.zeros(size, 0), sequences=(),
                 label=(torch.rand(size, generator=g) < 0.4).float())


def test_split_head_logits_hand_computed() -> None:
    head = torch.nn.Linear(3, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        head.bias.fill_(0.25)
    h = torch.tensor([[1.0, 1.0, 2.0]])  # parts [1] and [1, 2]
    sub = split_head_logits(head, h, (1, 2))
    assert sub[:, 0].tolist() == pytest.approx([2 * 1.0 + 0.25, 2 * (-2.0 + 1.0) + 0.25])
    assert sub.mean(0).item() == pytest.approx(head(h).item())


@pytest.mark.parametrize("name", ["final", "dcnv3"])
def test_sub_logits_average_to_the_prediction(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, FEATURE_MAP, SMALL[name]).eval()
    out = model(make_batch())
    assert out.aux_logits is not None and out.aux_logits.shape == (2, 16)
    torch.testing.assert_close(out.aux_logits.mean(0), out.logit)


def test_switched_off_losses_give_plain_outputs() -> None:
    final = build_model("final", FEATURE_MAP, {**SMALL["final"], "self_distillation": False})
    one_block = build_model("final", FEATURE_MAP, {**SMALL["final"], "num_blocks": 1})
    dcnv3 = build_model("dcnv3", FEATURE_MAP, {**SMALL["dcnv3"], "tri_bce": False})
    for model in (final, one_block, dcnv3):
        out = model(make_batch())
        assert out.aux_loss == "none" and out.aux_logits is None


def test_self_distillation_hand_computed() -> None:
    sub = torch.tensor([[0.0, 2.0], [1.0, -1.0]], requires_grad=True)  # [S=2, B=2]
    logit = sub.mean(0)  # [0.5, 0.5]
    out = ModelOutput(logit=logit, h=torch.zeros(2, 1), aux_logits=sub,
                      aux_loss="self_distillation")
    loss = auxiliary_loss(out, torch.tensor([1.0, 0.0]), torch.tensor(0.0))
    t = sigmoid(0.5)  # the teacher, for both rows
    expected = sum(
        (bce(sigmoid(a), 1) * t + bce(sigmoid(a), 0) * (1 - t) + bce(sigmoid(b), 1) * t
         + bce(sigmoid(b), 0) * (1 - t)) / 2
        for a, b in [(0.0, 2.0), (1.0, -1.0)]
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the teacher is detached: each block's gradient is (p_b - t) / B, nothing through logit
    (grad,) = torch.autograd.grad(loss, sub)
    expected_grad = (torch.sigmoid(sub.detach()) - t) / 2
    torch.testing.assert_close(grad, expected_grad)


def test_tri_bce_hand_computed() -> None:
    label = torch.tensor([1.0, 0.0])
    sub = torch.tensor([[3.0, -2.0], [-1.0, 0.0]])  # deep, shallow
    logit = sub.mean(0)  # [1, -1]
    main = (bce(sigmoid(1.0), 1) + bce(sigmoid(-1.0), 0)) / 2
    deep = (bce(sigmoid(3.0), 1) + bce(sigmoid(-2.0), 0)) / 2
    shallow = (bce(sigmoid(-1.0), 1) + bce(sigmoid(0.0), 0)) / 2
    out = ModelOutput(logit=logit, h=torch.zeros(2, 1), aux_logits=sub, aux_loss="tri_bce")
    loss = auxiliary_loss(out, label, torch.tensor(main))
    expected = max(0.0, deep - main) * deep + max(0.0, shallow - main) * shallow
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert deep < main < shallow  # one weight clipped to 0, one active


@pytest.mark.parametrize("name", ["final", "dcnv3"])
def test_objectives_add_the_papers_loss(name: str) -> None:
    torch.manual_seed(0)
    models = [build_model(name, FEATURE_MAP, SMALL[name]) for _ in range(2)]
    batch = make_batch()
    outputs = [m(batch) for m in models]
    single = IndependentObjective(["a"])(outputs[:1], batch)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(outputs[0].logit, batch.label)
    extra = auxiliary_loss(outputs[0], batch.label, plain)
    torch.testing.assert_close(single.loss, plain + extra)
    assert "aux/a" in single.parts
    mutual = MutualObjective(["a", "b"])(outputs, batch)
    assert {"aux/a", "aux/b"} <= set(mutual.parts)


def test_batched_group_carries_sub_logits() -> None:
    torch.manual_seed(0)
    models = [build_model("final", FEATURE_MAP, SMALL["final"]).eval() for _ in range(2)]
    batch = make_batch()
    group = BatchedModelGroup(models, ["a", "b"]).eval()
    for model, out in zip(models, group(batch), strict=True):
        expected = model(batch)
        assert out.aux_loss == "self_distillation"
        torch.testing.assert_close(out.aux_logits, expected.aux_logits)
