"""The mutual-learning objective (Yilmaz & Aldemir 2024, eq. 3) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.base import PER_MEMBER
from mutualctr.training.objectives.mutual import ENSEMBLE, MutualObjective

LN3 = math.log(3.0)
# probabilities: a = [0.5, 0.75], b = [0.25, 0.5], c = [0.75, 0.25]; labels y = [1, 0]
LOGITS = {"a": [0.0, LN3], "b": [-LN3, 0.0], "c": [LN3, -LN3]}
LABEL = torch.tensor([1.0, 0.0])
BCE = {"a": 1.5 * math.log(2.0), "b": 1.5 * math.log(2.0), "c": math.log(4.0 / 3.0)}
MSE = {("a", "b"): 0.0625, ("a", "c"): 0.15625, ("b", "c"): 0.15625}


def outputs(names: list[str]) -> list[ModelOutput]:
    return [
        ModelOutput(logit=torch.tensor(LOGITS[n], dtype=torch.float64), h=torch.zeros(2, 1))
        for n in names
    ]


def batch() -> Batch:
    return Batch(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0), (), LABEL.double())


def test_two_models_mse_matches_hand_computation() -> None:
    out = MutualObjective(["a", "b"])(outputs(["a", "b"]), batch())
    assert out.parts["bce/a"] == pytest.approx(BCE["a"])
    assert out.parts["mutual/a"] == pytest.approx(0.0625)
    assert out.parts["mutual/b"] == pytest.approx(0.0625)
    assert float(out.loss) == pytest.approx(3 * math.log(2.0) + 0.125)


@pytest.mark.parametrize("weight", [1.0, 2.0])
def test_three_models_mse_matches_hand_computation(weight: float) -> None:
    names = ["a", "b", "c"]
    out = MutualObjective(names, weight=weight)(outputs(names), batch())
    mutual = {
        "a": weight / 2 * (MSE["a", "b"] + MSE["a", "c"]),  # 0.109375 * w
        "b": weight / 2 * (MSE["a", "b"] + MSE["b", "c"]),
        "c": weight / 2 * (MSE["a", "c"] + MSE["b", "c"]),  # 0.15625 * w
    }
    for n in names:
        assert out.parts[f"mutual/{n}"] == pytest.approx(mutual[n])
    assert float(out.loss) == pytest.approx(sum(BCE.values()) + sum(mutual.values()))


def test_kl_divergence_matches_hand_computation() -> None:
    out = MutualObjective(["a", "b"], divergence="kl")(outputs(["a", "b"]), batch())
    # KL(p_b || p_a) averaged over the two rows, and KL(p_a || p_b)
    kl_b_a = (0.25 * math.log(0.5) + 0.75 * math.log(1.5) + 0.5 * math.log(2 / 3)
              + 0.5 * math.log(2.0)) / 2
    kl_a_b = (0.5 * math.log(2.0) + 0.5 * math.log(2 / 3) + 0.75 * math.log(1.5)
              + 0.25 * math.log(0.5)) / 2
    assert out.parts["mutual/a"] == pytest.approx(kl_b_a)
    assert out.parts["mutual/b"] == pytest.approx(kl_a_b)


def test_predictions_are_members_and_mean_ensemble() -> None:
    names = ["a", "b", "c"]
    objective = MutualObjective(names)
    preds = objective.predict(outputs(names))
    assert preds["a"].tolist() == pytest.approx([0.5, 0.75])
    assert preds[ENSEMBLE].tolist() == pytest.approx([0.5, 0.5])
    assert objective.monitor == PER_MEMBER


def test_each_model_gets_only_its_own_loss_gradient() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    y = (torch.rand(16) < 0.4).float()
    nets = [torch.nn.Linear(3, 1) for _ in range(3)]
    outs = [ModelOutput(logit=net(x).squeeze(-1), h=x) for net in nets]
    loss = MutualObjective(["a", "b", "c"])(outs, Batch(x.long(), x, (), y)).loss
    grads = torch.autograd.grad(loss, [p for n in nets for p in n.parameters()])
    # model 0's own loss, with its peers' predictions as constants (eq. 3)
    p = [torch.sigmoid(net(x).squeeze(-1)) for net in nets]
    own = torch.nn.functional.binary_cross_entropy(p[0], y) + 0.5 * sum(
        ((p[i].detach() - p[0]) ** 2).mean() for i in (1, 2)
    )
    expected = torch.autograd.grad(own, list(nets[0].parameters()))
    for got, want in zip(grads[:2], expected, strict=True):
        torch.testing.assert_close(got, want)
    # model 0's loss sends nothing to the peers' parameters
    peer_grads = torch.autograd.grad(
        own, [q for net in nets[1:] for q in net.parameters()], allow_unused=True
    )
    assert all(g is None for g in peer_grads)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        MutualObjective(["a"])
    with pytest.raises(ConfigError, match="divergence"):
        MutualObjective(["a", "b"], divergence="js")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ensemble"):
        MutualObjective(["a", ENSEMBLE])
