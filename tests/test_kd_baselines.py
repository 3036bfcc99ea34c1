"""Online KD, KDCL-MinLogit and ECKD objectives against hand-computed values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.training.objectives.kd_baselines import ECKD, KDCL, OnlineKD, soft_bce

LABEL = torch.tensor([1.0, 0.0])
BATCH = Batch(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 0), (), LABEL)
LOGITS = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.5]])


def outputs_of(logits: torch.Tensor, h_dim: int = 2) -> list[ModelOutput]:
    h = torch.arange(2 * h_dim, dtype=torch.float32).reshape(2, h_dim) / 4
    return [ModelOutput(logit=z, h=h + i) for i, z in enumerate(logits)]


def test_soft_bce_by_hand() -> None:
    # T = 2: target sigmoid(1 / 2), student sigmoid(0 / 2) = 0.5 -> T^2 * BCE
    target = 1 / (1 + math.exp(-0.5))
    expected = 4 * -(target * math.log(0.5) + (1 - target) * math.log(0.5))
    value = soft_bce(torch.tensor([0.0]), torch.tensor([1.0]), temperature=2.0)
    assert float(value) == pytest.approx(expected)


def test_soft_bce_gradient_is_probability_gap_and_teacher_gets_none() -> None:
    # d/dz_s of BCE(sigmoid(z_t), sigmoid(z_s)) at T = 1 is sigmoid(z_s) - sigmoid(z_t)
    student = torch.tensor([0.3], requires_grad=True)
    teacher = torch.tensor([1.2], requires_grad=True)
    soft_bce(student, teacher, 1.0).backward()
    assert float(student.grad) == pytest.approx(
        1 / (1 + math.exp(-0.3)) - 1 / (1 + math.exp(-1.2)))
    assert teacher.grad is None


def test_kdcl_minlogit_teacher_is_the_most_confident_correct_member() -> None:
    logits = LOGITS.clone().requires_grad_(True)
    objective = KDCL(["a", "b", "c"], temperature=1.0, alpha=1.0)
    out = objective(outputs_of(logits), BATCH)
    # click (y = 1): teacher = max logit = 2.0; no click (y = 0): teacher = min logit = -1.0
    teacher = torch.tensor([2.0, -1.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = sum(bce(z, LABEL) + soft_bce(z, teacher, 1.0) for z in LOGITS) / 3
    assert float(out.loss.detach()) == pytest.approx(float(expected))
    # reported teacher: the label-free mean logit
    assert out.predictions["teacher"].tolist() == pytest.approx(
        torch.sigmoid(LOGITS.mean(0)).tolist())
    out.loss.backward()
    # member a *is* the teacher on both examples, so its KD gradient vanishes: only BCE remains
    expected_grad_a = (torch.sigmoid(LOGITS[0]) - LABEL) / 2 / 3
    assert logits.grad[0].tolist() == pytest.approx(expected_grad_a.tolist())


def test_online_kd_loss_by_hand() -> None:
    objective = OnlineKD(["a", "b", "c"], temperature=2.0, alpha=0.5)
    out = objective(outputs_of(LOGITS), BATCH)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    teacher = LOGITS.mean(0)
    expected = bce(teacher, LABEL) + sum(
        bce(z, LABEL) + 0.5 * soft_bce(z, teacher, 2.0) for z in LOGITS) / 3
    assert float(out.loss.detach()) == pytest.approx(float(expected))
    assert set(out.parts) == {"bce_teacher", "bce", "kd"}


def test_eckd_gate_fuses_teachers_and_distils_into_the_last_member() -> None:
    torch.manual_seed(0)
    objective = ECKD(["t1", "t2", "student"], representation_dims=[2, 2, 2])
    logits = LOGITS.clone().requires_grad_(True)
    outputs = outputs_of(logits)
    gate_in = torch.cat([outputs[0].h, outputs[1].h], dim=1)
    weights = torch.softmax(objective.gate(gate_in), dim=1)
    fused = (weights * LOGITS[:2].T).sum(1)
    out = objective(outputs, BATCH)
    assert out.predictions["teacher"].tolist() == pytest.approx(torch.sigmoid(fused).tolist())
    # the KD term reaches only the student; teachers get their BCE and the fused BCE
    only_kd = objective.alpha * soft_bce(logits[2], objective.teacher_logit(outputs), 1.0)
    grads = torch.autograd.grad(only_kd, logits)[0]
    assert grads[:2].abs().sum() == 0
    assert grads[2].abs().sum() > 0


def test_baselines_validate_their_members() -> None:
    with pytest.raises(ConfigError, match="at least 3"):
        ECKD(["a", "b"], representation_dims=[2, 2])
    with pytest.raises(ConfigError, match="temperature"):
        OnlineKD(["a", "b"], temperature=0.0, alpha=1.0)
