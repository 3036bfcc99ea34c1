"""EKTF's examination scores, weights and loss against hand-computed values (K = 2 and 3)."""

from __future__ import annotations

import math

import pytest
import torch

from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.ektf import (
    VARIANTS,
    EKTFObjective,
    ektf_loss,
    examination_scores,
    peer_weights,
    teacher_weights,
)

LABEL = torch.tensor([1.0, 0.0])
PROBS_2 = torch.tensor([[0.8, 0.4], [0.5, 0.3]], dtype=torch.float64)
PROBS_3 = torch.tensor([[0.9, 0.2], [0.6, 0.5], [0.3, 0.6]], dtype=torch.float64)


def assert_close(actual: torch.Tensor, expected: list[list[float]]) -> None:
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-7)


def logits_of(probs: torch.Tensor) -> torch.Tensor:
    return torch.log(probs / (1 - probs))


def test_scores_and_weights_k2() -> None:
    # S_1 = mean(1 - 0.2, 1 - 0.4) = 0.7; S_2 = mean(0.5, 0.7) = 0.6
    scores = examination_scores(PROBS_2, LABEL.double())
    assert scores.tolist() == pytest.approx([0.7, 0.6])
    # softmin: lambda_1 = 1 / (1 + e^{0.1})
    assert teacher_weights(scores).tolist() == pytest.approx([0.47502081, 0.52497919])
    # one peer each: mu = 1 off the diagonal
    assert_close(peer_weights(scores), [[0.0, 1.0], [1.0, 0.0]])


def test_scores_and_weights_k3() -> None:
    scores = examination_scores(PROBS_3, LABEL.double())
    assert scores.tolist() == pytest.approx([0.85, 0.55, 0.35])
    # softmax(-S) = e^{-S_k} / sum_j e^{-S_j}
    assert teacher_weights(scores).tolist() == pytest.approx([0.25008878, 0.33758454, 0.41232669])
    # row k: softmax over the peers j != k of (S_l - S_k), e.g. row 1: softmax(-0.3, -0.5)
    assert_close(peer_weights(scores), [
        [0.0, 0.54983400, 0.45016600],
        [0.62245933, 0.0, 0.37754067],
        [0.57444252, 0.42555748, 0.0],
    ])


def test_loss_k2_by_hand() -> None:
    # p_t = sigmoid(mean logit) = (2/3, 0.34833148); lambda as above; mu = 1.
    # bce = mean of -log(0.8), -log(0.6), -log(0.5), -log(0.7)  = 0.44594782
    # kd = sum_k lambda_k * mean_b (p_t - p_k)^2                 = 0.01276101
    # dml = mean_k MSE(p_other, p_k) = (0.3^2 + 0.1^2) / 2        = 0.05
    loss, parts = ektf_loss(logits_of(PROBS_2), LABEL.double())
    assert float(parts["bce"]) == pytest.approx(0.44594782)
    assert float(parts["kd"]) == pytest.approx(0.01276101)
    assert float(parts["dml"]) == pytest.approx(0.05)
    assert float(loss) == pytest.approx(0.50870883)


def reference_loss(probs: list[list[float]], label: list[float], examination: bool = True
                   ) -> float:
    """The paper's loss written term by term with scalars (independent of the vector code)."""
    k_count, batch = len(probs), len(label)
    logit = [[math.log(p / (1 - p)) for p in row] for row in probs]
    teacher = [1 / (1 + math.exp(-sum(logit[k][b] for k in range(k_count)) / k_count))
               for b in range(batch)]
    scores = [sum(1 - abs(label[b] - probs[k][b]) for b in range(batch)) / batch
              for k in range(k_count)]

    def mse(a: list[float], b: list[float]) -> float:
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / batch

    bce = sum(-math.log(p if y == 1 else 1 - p) for row in probs for p, y in zip(row, label,
              strict=True)) / (k_count * batch)
    if examination:
        z = sum(math.exp(-s) for s in scores)
        lam = [math.exp(-s) / z for s in scores]
    else:
        lam = [1 / k_count] * k_count
    kd = sum(lam[k] * mse(teacher, probs[k]) for k in range(k_count))
    dml = 0.0
    for k in range(k_count):
        peers = [j for j in range(k_count) if j != k]
        if examination:
            z = sum(math.exp(scores[j] - scores[k]) for j in peers)
            mu = {j: math.exp(scores[j] - scores[k]) / z for j in peers}
        else:
            mu = {j: 1 / (k_count - 1) for j in peers}
        dml += sum(mu[j] * mse(probs[j], probs[k]) for j in peers)
    return bce + kd + dml / k_count


@pytest.mark.parametrize("probs", [PROBS_2, PROBS_3])
@pytest.mark.parametrize("variant", ["ektf", "no_examination"])
def test_loss_matches_scalar_reference(probs: torch.Tensor, variant: str) -> None:
    loss, _ = ektf_loss(logits_of(probs), LABEL.double(), VARIANTS[variant])
    expected = reference_loss(probs.tolist(), LABEL.tolist(), VARIANTS[variant].examination)
    assert float(loss) == pytest.approx(expected, rel=1e-9)


def test_ablations_switch_terms_off() -> None:
    logits = logits_of(PROBS_3)
    _, full = ektf_loss(logits, LABEL.double())
    _, only_kd = ektf_loss(logits, LABEL.double(), VARIANTS["only_kd"])
    _, only_dml = ektf_loss(logits, LABEL.double(), VARIANTS["only_dml"])
    _, mean = ektf_loss(logits, LABEL.double(), VARIANTS["mean"])
    assert float(only_kd["kd"]) == pytest.approx(float(full["kd"]))
    assert float(only_kd["dml"]) == 0.0
    assert float(only_dml["dml"]) == pytest.approx(float(full["dml"]))
    assert float(only_dml["kd"]) == 0.0
    assert float(mean["kd"]) == 0.0 == float(mean["dml"])
    _, uniform = ektf_loss(logits, LABEL.double(), VARIANTS["no_examination"])
    assert uniform["lambda"].tolist() == pytest.approx([1 / 3] * 3)
    assert_close(uniform["mu"], [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def test_without_all_is_the_mean_ensemble_trained_on_the_label() -> None:
    """"w/o all" (section 4.3.1) is section 3.1's mean ensemble: BCE on sigmoid(mean logit) only,
    its gradient reaching each student through the mean, no per-student label loss, no transfer.
    By hand for PROBS_2: mean logits (ln 4 + 0) / 2 = ln 2 -> p_t = 2/3, and
    (ln(2/3) + ln(3/7)) / 2 = ln sqrt(2/7) -> p_t = r / (1 + r) with r = sqrt(2/7)."""
    r = math.sqrt(2 / 7)
    p_t = [2 / 3, r / (1 + r)]
    # BCE = (-ln(2/3) - ln(1 - r / (1 + r))) / 2 = (ln 1.5 + ln(1 + r)) / 2 = 0.41684218
    expected = (math.log(1.5) + math.log(1 + r)) / 2
    logits = logits_of(PROBS_2).clone().requires_grad_(True)
    loss, parts = ektf_loss(logits, LABEL.double(), VARIANTS["mean"])
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)
    assert float(loss.detach()) == pytest.approx(0.41684218)
    assert float(parts["kd"]) == 0.0 == float(parts["dml"])
    loss.backward()
    # d BCE(y, sigmoid(mean_k z_k)) / d z_{k,b} = (p_t,b - y_b) / (K B), the same for every k
    # (students' own BCE would give (p_{k,b} - y_b) / (K B): (0.8 - 1) / 4 for the first)
    row = [(p_t[0] - 1) / 4, p_t[1] / 4]
    assert_close(logits.grad, [row, row])


def test_gradients_treat_teacher_and_peers_as_constants() -> None:
    """With detached weights, d loss / d z_k equals the gradient of a loss whose teacher, peer
    targets, lambda and mu are plain numbers."""
    logits = logits_of(PROBS_3).clone().requires_grad_(True)
    loss, parts = ektf_loss(logits, LABEL.double(), detach_weights=True)
    loss.backward()

    z = logits_of(PROBS_3).clone().requires_grad_(True)
    p = torch.sigmoid(z)
    teacher = torch.sigmoid(logits_of(PROBS_3).mean(0))  # constant
    lam, mu = parts["lambda"].detach(), parts["mu"].detach()
    expected = torch.nn.functional.binary_cross_entropy(p, LABEL.double().expand(3, 2))
    expected = expected + sum(lam[k] * ((teacher - p[k]) ** 2).mean() for k in range(3))
    targets = PROBS_3  # constants
    expected = expected + sum(
        mu[k, j] * ((targets[j] - p[k]) ** 2).mean() for k in range(3) for j in range(3) if j != k
    ) / 3
    expected.backward()
    assert torch.allclose(logits.grad, z.grad, atol=1e-12)


def test_default_lets_gradients_flow_through_weights() -> None:
    detached = logits_of(PROBS_3).clone().requires_grad_(True)
    ektf_loss(detached, LABEL.double(), detach_weights=True)[0].backward()
    live = logits_of(PROBS_3).clone().requires_grad_(True)
    ektf_loss(live, LABEL.double(), detach_weights=False)[0].backward()
    assert not torch.allclose(detached.grad, live.grad)
    # without examination the weights are constants, so the option changes nothing
    a = logits_of(PROBS_3).clone().requires_grad_(True)
    ektf_loss(a, LABEL.double(), VARIANTS["no_examination"], detach_weights=False)[0].backward()
    b = logits_of(PROBS_3).clone().requires_grad_(True)
    ektf_loss(b, LABEL.double(), VARIANTS["no_examination"], detach_weights=True)[0].backward()
    assert torch.equal(a.grad, b.grad)


def test_objective_predictions_and_monitor() -> None:
    logits = logits_of(PROBS_3).float()
    outputs = [ModelOutput(logit=z, h=torch.zeros(2, 1)) for z in logits]
    objective = EKTFObjective(["a", "b", "c"])
    from mutualctr.data.batch import Batch

    batch = Batch(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 0), (), LABEL)
    out = objective(outputs, batch)
    assert objective.monitor == "teacher"
    assert set(out.predictions) == {"teacher", "a", "b", "c"}
    assert out.predictions["teacher"].tolist() == pytest.approx(
        torch.sigmoid(logits.mean(0)).tolist())
    assert out.predictions["b"].tolist() == pytest.approx([0.6, 0.5])
    assert float(out.loss) == pytest.approx(reference_loss(PROBS_3.tolist(), [1, 0]), rel=1e-5)


def test_objective_rejects_bad_setups() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        EKTFObjective(["only"])
    with pytest.raises(ConfigError, match="unknown EKTF variant"):
        EKTFObjective(["a", "b"], variant="nope")
