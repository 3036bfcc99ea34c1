"""The trainer's parts: learning, selection and restore, schedules, L2 form, AMP."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from mutualctr.config import from_dict
from mutualctr.data.store import SplitArrays
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.optimizers import build_optimizer
from mutualctr.training.trainer import Trainer, fit
from training_support import synthetic_split, tiny_model


def _config(**values: object) -> TrainConfig:
    return from_dict(TrainConfig, {"batch_size": 100, "lr": 0.01, **values})


def _noisy(rows: int, seed: int) -> SplitArrays:
    """Labels unrelated to the inputs: validation AUC wanders, so early stopping triggers."""
    split = synthetic_split(rows, seed)
    label = (np.random.default_rng(seed + 100).random(rows) < 0.5).astype(np.float32)
    return SplitArrays(split.categorical, split.numeric, (), label)


def test_single_model_learns_and_reports_metrics_by_prediction() -> None:
    result = fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                 synthetic_split(3000, 0), synthetic_split(500, 1), _config(epochs=2),
                 test=synthetic_split(500, 2))
    assert set(result.metrics["test"]) == {"tiny"}
    assert set(result.metrics["test"]["tiny"]) == {"auc", "logloss"}
    assert result.metrics["test"]["tiny"]["auc"] > 0.75
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


def test_early_stopping_restores_the_best_epoch_jointly() -> None:
    config = _config(epochs=8, early_stopping={"patience": 1})
    result = fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                 _noisy(2000, 0), _noisy(500, 1), config)
    aucs = [h["valid"]["tiny"]["auc"] for h in result.history]
    best = int(np.argmax(aucs))
    assert len(aucs) == best + 2  # stopped one epoch after the best (patience 1)
    assert result.best_epochs == {"tiny": best + 1}
    assert result.metrics["valid"]["tiny"]["auc"] == pytest.approx(aucs[best], abs=1e-12)


def test_per_member_selection_restores_each_member_to_its_own_best_epoch() -> None:
    names = ["a", "b"]
    config = _config(epochs=4, early_stopping={"patience": 4})
    result = fit(ModelGroup([tiny_model(0), tiny_model(1)], names), IndependentObjective(names),
                 _noisy(2000, 0), _noisy(500, 1), config)
    for name in names:
        aucs = [h["valid"][name]["auc"] for h in result.history]
        assert result.best_epochs[name] == int(np.argmax(aucs)) + 1
        assert result.metrics["valid"][name]["auc"] == pytest.approx(max(aucs), abs=1e-12)
    assert "ensemble" in result.metrics["valid"]


def test_exponential_schedule_reaches_decay_to_after_decay_epochs() -> None:
    config = _config(epochs=2, schedule={"name": "exponential", "decay_to": 0.1,
                                         "decay_epochs": 2})
    result = fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                 synthetic_split(1000, 0), synthetic_split(200, 1), config)
    steps = 10 * 2  # the last step ran with global step 19 of 20
    assert result.history[-1]["lr"] == pytest.approx(0.01 * 0.1 ** ((steps - 1) / steps))


def test_plateau_schedule_cuts_the_rate_after_a_bad_epoch() -> None:
    config = _config(epochs=6, early_stopping={"patience": 6},
                     schedule={"name": "plateau", "patience": 0, "factor": 0.5})
    result = fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                 _noisy(1000, 0), _noisy(300, 1), config)
    best, lr = -math.inf, 0.01
    for record in result.history:
        auc = record["valid"]["tiny"]["auc"]
        lr = lr if auc > best else lr * 0.5
        best = max(best, auc)
        assert record["lr"] == pytest.approx(lr)


def test_l2_groups_and_adam_weight_decay_equals_the_l2_penalty_gradient() -> None:
    group = ModelGroup([tiny_model()], ["tiny"])
    optimizer = build_optimizer(group, _config(embedding_l2=1e-3, net_l2=1e-4))
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    model = group.models[0]
    assert by_decay[1e-3] == {id(model.embedding.table.weight),
                              id(model.embedding.numeric_weight)}
    assert id(model.mlp[0].weight) in by_decay[1e-4] and id(model.head.bias) in by_decay[1e-4]
    # one Adam step with weight_decay == one step on loss + lambda/2 ||W||^2 (FuxiCTR's form)
    w1 = torch.nn.Parameter(torch.randn(5))
    w2 = torch.nn.Parameter(w1.detach().clone())
    x = torch.randn(5)
    a = torch.optim.Adam([w1], lr=0.1, weight_decay=0.3)
    b = torch.optim.Adam([w2], lr=0.1)
    (w1 * x).sum().backward()
    ((w2 * x).sum() + 0.3 / 2 * w2.pow(2).sum()).backward()
    a.step()
    b.step()
    torch.testing.assert_close(w1, w2)


def test_bf16_autocast_trains() -> None:
    result = fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                 synthetic_split(1500, 0), synthetic_split(500, 1), _config(epochs=2, amp=True))
    assert result.metrics["valid"]["tiny"]["auc"] > 0.7


def test_grad_clip_bounds_the_gradient_norm(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                      _config(grad_clip=1e-3))
    seen = []
    step = trainer.optimizer.step

    def spy() -> None:
        grads = [p.grad for p in trainer.step_module.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
        step()

    monkeypatch.setattr(trainer.optimizer, "step", spy)
    trainer.fit(synthetic_split(500, 0), synthetic_split(200, 1))
    assert len(seen) == 5 and max(seen) == pytest.approx(1e-3, rel=1e-3)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal_and_summaries_only_elsewhere() -> None:
    for stream, live in ((_Terminal(), True), (io.StringIO(), False)):
        fit(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
            synthetic_split(400, 0), synthetic_split(100, 1),
            _config(log_every_steps=2), log=stream)
        text = stream.getvalue()
        assert ("\repoch 1/1  2/4  loss " in text and "k rows/s" in text) == live
        assert "epoch 1/1: train loss" in text and "valid tiny auc" in text


def test_a_time_budget_stops_training_after_the_epoch_that_crosses_it() -> None:
    config = from_dict(TrainConfig, {"epochs": 5, "batch_size": 64, "device": "cpu",
                                     "max_seconds": 1e-9, "log_every_steps": 1000})
    group = ModelGroup([tiny_model(0)], ["a"])
    log = io.StringIO()
    fit(group, IndependentObjective(["a"]), synthetic_split(256, 0), synthetic_split(64, 1),
        config, log=log)
    assert "epoch 1/5" in log.getvalue() and "epoch 2/5" not in log.getvalue()
    assert "time budget spent" in log.getvalue()
    assert from_dict(TrainConfig, {}).max_seconds == 0  # none by default
