"""CETNet: entropy, confidence weights, fusion and symmetric KL against hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.cetnet import (
    CETNetObjective,
    ConfidenceFusion,
    binary_entropy,
    confidence,
    fusion_weights,
    symmetric_kl,
)


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def z(*probs: float) -> torch.Tensor:
    return torch.tensor([[logit(p) for p in probs]], dtype=torch.float64)


def test_binary_entropy_hand_values() -> None:
    # H(0.5) = ln 2; H(0.9) = -0.9 ln 0.9 - 0.1 ln 0.1 = 0.0948245 + 0.2302585
    h = binary_entropy(z(0.5, 0.9, 0.1))
    torch.testing.assert_close(h, torch.tensor([[0.6931472, 0.3250830, 0.3250830]],
                                               dtype=torch.float64), atol=1e-7, rtol=0)


def test_binary_entropy_is_finite_and_zero_when_saturated() -> None:
    h = binary_entropy(torch.tensor([-200.0, 200.0]))
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, torch.zeros(2))


def test_fusion_weights_hand_values() -> None:
    # C = (-ln 2, -0.325083); w_2 = 1 / (1 + exp(-0.6931472 + 0.3250830)) = 0.5909911
    w = fusion_weights(z(0.5, 0.9))
    torch.testing.assert_close(w, torch.tensor([[0.4090089, 0.5909911]], dtype=torch.float64),
                               atol=1e-7, rtol=0)
    # equally confident models (p and 1 - p) weigh the same
    torch.testing.assert_close(fusion_weights(z(0.2, 0.8)),
                               torch.tensor([[0.5, 0.5]], dtype=torch.float64))


def bernoulli_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_symmetric_kl_is_half_the_two_kls_as_in_the_paper() -> None:
    # Liu et al. section 3.3.1: L_kl = 1/2 KL(p_a||p_b) + 1/2 KL(p_b||p_a), per sample.
    # sample 1, p = (0.9, 0.5): KL(0.9||0.5) = 0.9 ln 1.8 + 0.1 ln 0.2 = 0.3680642,
    #   KL(0.5||0.9) = 0.5 ln(5/9) + 0.5 ln 5 = 0.5108256; half the sum: 0.4394449
    torch.testing.assert_close(symmetric_kl(z(0.9, 0.5)),
                               torch.tensor(0.4394449, dtype=torch.float64), atol=1e-7, rtol=0)
    # sample 2, p = (0.2, 0.4): KL(0.2||0.4) = 0.2 ln 0.5 + 0.8 ln(4/3) = 0.0915163,
    #   KL(0.4||0.2) = 0.4 ln 2 + 0.6 ln 0.75 = 0.1046496; half the sum: 0.0980830.
    # The batch mean: (0.4394449 + 0.0980830) / 2 = 0.2687640.
    logits = torch.cat([z(0.9, 0.5), z(0.2, 0.4)])
    torch.testing.assert_close(symmetric_kl(logits),
                               torch.tensor(0.2687640, dtype=torch.float64), atol=1e-7, rtol=0)


def test_symmetric_kl_is_the_mean_over_pairs_and_samples() -> None:
    rows = [(0.9, 0.5, 0.2), (0.3, 0.6, 0.55)]
    expected = np.mean([
        0.5 * (bernoulli_kl(r[i], r[j]) + bernoulli_kl(r[j], r[i]))
        for r in rows for i, j in itertools.combinations(range(3), 2)
    ])
    logits = torch.cat([z(*r) for r in rows])
    assert symmetric_kl(logits).item() == pytest.approx(expected, rel=1e-12)
    assert symmetric_kl(z(0.3, 0.3)).item() == 0.0


def test_objective_weighs_half_the_symmetric_kl_by_alpha() -> None:
    # one sample, label 1, p = (0.9, 0.5), alpha = 1, a zero readout (fused p = 0.5):
    # BCE(fused) = ln 2, member BCEs = -ln 0.9 - ln 0.5, L_kl = 0.4394449 (see above)
    objective = CETNetObjective(["a", "b"], [1, 1], alpha=1.0).double()
    with torch.no_grad():
        objective.fusion.readout.weight.zero_()
        objective.fusion.readout.bias.zero_()
    outputs = [ModelOutput(logit=z(p)[0], h=torch.ones(1, 1, dtype=torch.float64))
               for p in (0.9, 0.5)]
    batch = Batch(categorical=torch.zeros(1, 0, dtype=torch.long), numeric=torch.zeros(1, 0),
                  sequences=(), label=torch.ones(1, dtype=torch.float64))
    expected = math.log(2) - math.log(0.9) - math.log(0.5) + 0.4394449
    assert objective(outputs, batch).loss.item() == pytest.approx(expected, abs=1e-7)


def test_confidence_fusion_hand_value() -> None:
    fusion = ConfidenceFusion([2, 1], mode="confidence").double()
    with torch.no_grad():
        fusion.readout.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        fusion.readout.bias.fill_(0.5)
    hs = [torch.tensor([[1.0, -1.0]], dtype=torch.float64),
          torch.tensor([[2.0]], dtype=torch.float64)]
    fused, weights = fusion(hs, z(0.5, 0.9))
    w1, w2 = 0.4090089, 0.5909911
    expected = 0.5 + 1.0 * w1 - 2.0 * w1 + 3.0 * 2.0 * w2
    assert fused.item() == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize(("mode", "width"), [("confidence", 5), ("concat", 5), ("sum", 3),
                                             ("confidence_sum", 3)])
def test_fusion_modes_readout_sizes(mode: str, width: int) -> None:
    fusion = ConfidenceFusion([3, 2], mode=mode)
    assert fusion.readout.in_features == width
    # sums over different sizes project each h to the largest size first
    assert (fusion.projections is not None) == mode.endswith("sum")
    fused, _ = fusion([torch.randn(4, 3), torch.randn(4, 2)], torch.randn(4, 2))
    assert fused.shape == (4,)


def test_plain_sum_of_equal_sizes_is_unprojected() -> None:
    fusion = ConfidenceFusion([2, 2], mode="sum").double()
    assert fusion.projections is None
    with torch.no_grad():
        fusion.readout.weight.copy_(torch.tensor([[1.0, -1.0]]))
        fusion.readout.bias.zero_()
    hs = [torch.tensor([[1.0, 2.0]], dtype=torch.float64),
          torch.tensor([[3.0, 5.0]], dtype=torch.float64)]
    fused, weights = fusion(hs, z(0.5, 0.9))
    assert fused.item() == pytest.approx((1 + 3) - (2 + 5))
    torch.testing.assert_close(weights, torch.ones(1, 2, dtype=torch.float64))


def test_detached_confidence_passes_no_gradient_and_the_ablation_does() -> None:
    hs = [torch.randn(3, 2), torch.randn(3, 2)]
    for stop_gradient in (True, False):
        torch.manual_seed(0)
        fusion = ConfidenceFusion([2, 2], stop_gradient=stop_gradient)
        logits = torch.randn(3, 2, requires_grad=True)
        fused, _ = fusion(hs, logits)
        fused.sum().backward()
        if stop_gradient:
            assert logits.grad is None
        else:
            assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert not confidence(torch.zeros(2, requires_grad=True)).requires_grad


def outputs_and_batch() -> tuple[list[ModelOutput], Batch]:
    torch.manual_seed(0)
    outputs = [
        ModelOutput(logit=torch.randn(6, requires_grad=True), h=torch.randn(6, 4))
        for _ in range(3)
    ]
    batch = Batch(categorical=torch.zeros(6, 0, dtype=torch.long), numeric=torch.zeros(6, 0),
                  sequences=(), label=torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]))
    return outputs, batch


def test_objective_loss_is_the_sum_of_its_terms() -> None:
    outputs, batch = outputs_and_batch()
    objective = CETNetObjective(["a", "b", "c"], [4, 4, 4], alpha=0.5)
    out = objective(outputs, batch)
    logits = torch.stack([o.logit for o in outputs], dim=-1)
    bce = torch.nn.functional.binary_cross_entropy
    members = sum(bce(torch.sigmoid(logits[:, n]), batch.label) for n in range(3))
    fused_bce = bce(out.predictions["fused"], batch.label)
    expected = fused_bce + members + 0.5 * symmetric_kl(logits)
    torch.testing.assert_close(out.loss, expected)
    assert set(out.predictions) == {"fused", "a", "b", "c"}
    assert objective.monitor == "fused"
    for name, value in zip("abc", logits.unbind(-1), strict=True):
        torch.testing.assert_close(out.predictions[name], torch.sigmoid(value))
    torch.testing.assert_close(objective.predict(outputs)["fused"], out.predictions["fused"])


def test_objective_parts_hold_each_members_mean_fusion_weight() -> None:
    """What `train.tracking` shows of the fusion: the batch's mean weight per member."""
    outputs, batch = outputs_and_batch()
    out = CETNetObjective(["a", "b", "c"], [4, 4, 4])(outputs, batch)
    expected = fusion_weights(torch.stack([o.logit for o in outputs], dim=-1)).mean(0)
    for name, weight in zip("abc", expected, strict=True):
        torch.testing.assert_close(out.parts[f"fusion_weight/{name}"], weight.detach())


def test_objective_ablations_drop_their_terms() -> None:
    outputs, batch = outputs_and_batch()
    only_fused = CETNetObjective(["a", "b", "c"], [4, 4, 4], alpha=0.0, member_losses=False,
                                 fusion="concat")
    out = only_fused(outputs, batch)
    torch.testing.assert_close(
        out.loss, torch.nn.functional.binary_cross_entropy(out.predictions["fused"], batch.label)
    )
    assert set(out.parts) == {"bce_fused"}


def test_objective_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="fusion"):
        CETNetObjective(["a", "b"], [2, 2], fusion="mean")
    with pytest.raises(ConfigError, match="alpha"):
        CETNetObjective(["a", "b"], [2, 2], alpha=-1.0)
    with pytest.raises(ConfigError, match="fused"):
        CETNetObjective(["fused", "b"], [2, 2])
    with pytest.raises(ConfigError, match="two models"):
        CETNetObjective(["a"], [2], alpha=0.1)
