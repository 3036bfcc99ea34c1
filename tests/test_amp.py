"""``train.amp``: resolution of ``auto``, bfloat16 inside forward passes only, float32 losses,
parameters and optimizer state, and the precision recorded in the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mutualctr.config import from_dict, load_config
from mutualctr.data.batch import Batch
from mutualctr.data.loader import BatchLoader
from mutualctr.errors import ConfigError
from mutualctr.models.base import ModelOutput
from mutualctr.runfolders.folder import RunFolder, read_history
from mutualctr.training import precision
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.base import ObjectiveOutput
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.trainer import Trainer
from training_support import synthetic_split, tiny_model

CPU = torch.device("cpu")


@pytest.fixture
def cpu_with_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))


@pytest.fixture
def cpu_without_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert precision.cpu_flags(cpuinfo) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert precision.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.usefixtures("cpu_with_bf16")
def test_auto_is_bfloat16_on_a_cpu_with_bf16_unless_a_model_opts_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert precision.resolve_precision("auto", CPU, {"deepfm"}) == torch.bfloat16
    monkeypatch.setattr(precision, "FLOAT32_UNDER_AUTO", frozenset({"deepfm"}))
    assert precision.resolve_precision("auto", CPU, {"dcn", "deepfm"}) == torch.float32
    assert precision.resolve_precision("auto", CPU, {"dcn"}) == torch.bfloat16
    assert precision.resolve_precision(True, CPU, {"deepfm"}) == torch.bfloat16  # forced


@pytest.mark.usefixtures("cpu_with_bf16")
def test_models_that_fail_under_autocast_stay_float32_or_are_refused() -> None:
    assert precision.resolve_precision("auto", CPU, {"din"}) == torch.float32
    assert precision.resolve_precision("auto", CPU, {"deepfm", "dien"}) == torch.float32
    with pytest.raises(ConfigError, match="dien, din cannot train under bfloat16"):
        precision.resolve_precision(True, CPU, {"din", "dien"})
    assert precision.resolve_precision(False, CPU, {"din"}) == torch.float32


@pytest.mark.usefixtures("cpu_without_bf16")
def test_auto_is_float32_where_bfloat16_would_be_emulated() -> None:
    assert precision.resolve_precision("auto", CPU) == torch.float32
    assert precision.resolve_precision(True, CPU) == torch.bfloat16
    assert precision.resolve_precision(False, CPU) == torch.float32


def test_auto_on_cuda_asks_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert precision.resolve_precision("auto", cuda) == dtype


def test_config_accepts_auto_and_the_old_booleans(tmp_path: Path) -> None:
    assert from_dict(TrainConfig, {"amp": True}).amp is True
    assert from_dict(TrainConfig, {"amp": False}).amp is False
    assert from_dict(TrainConfig, {"amp": "auto"}).amp == "auto"
    old = tmp_path / "old.yaml"
    old.write_text("amp: false\nlr: 1e-3\n")
    assert load_config(TrainConfig, old).amp is False
    assert load_config(TrainConfig, None, ["amp=auto"]).amp == "auto"
    with pytest.raises(ConfigError, match="amp"):
        from_dict(TrainConfig, {"amp": "yes"})


class _Spy(IndependentObjective):
    """Records the dtypes the objective is given."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.seen: list[torch.dtype] = []

    def forward(self, outputs: list[ModelOutput], batch: Batch) -> ObjectiveOutput:
        self.seen += [o.logit.dtype for o in outputs] + [o.h.dtype for o in outputs]
        return super().forward(outputs, batch)


def _step(amp: bool | str) -> tuple[Trainer, list[torch.dtype], torch.Tensor]:
    """One training step; returns the trainer, the dtypes of the hidden layer's outputs inside
    the forward pass, and the loss."""
    model = tiny_model()
    inside: list[torch.dtype] = []
    model.mlp[0].register_forward_hook(lambda _m, _i, out: inside.append(out.dtype))
    objective = _Spy(["tiny"])
    config = from_dict(TrainConfig, {"batch_size": 64, "amp": amp, "device": "cpu"})
    trainer = Trainer(ModelGroup([model], ["tiny"]), objective, config)
    batch = next(BatchLoader(synthetic_split(64, 0), 64).batches(0))
    loss, _ = trainer._train_step(batch)
    return trainer, inside, loss


def test_false_runs_float32_throughout() -> None:
    trainer, inside, loss = _step(False)
    assert trainer.dtype == torch.float32
    assert inside == [torch.float32]
    assert set(trainer.objective.seen) == {torch.float32} and loss.dtype == torch.float32


@pytest.mark.parametrize("amp", [True, "auto"])
@pytest.mark.usefixtures("cpu_with_bf16")
def test_bfloat16_inside_forward_only(amp: bool | str) -> None:
    trainer, inside, loss = _step(amp)
    assert trainer.dtype == torch.bfloat16
    assert inside == [torch.bfloat16]  # the model's layers ran in bfloat16
    # the objective saw float32 logits and representations; the loss is float32
    assert set(trainer.objective.seen) == {torch.float32} and loss.dtype == torch.float32
    # weights, gradients and Adam's moments stay float32
    for p in trainer.step_module.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
        state = trainer.optimizer.state[p]
        assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32


@pytest.mark.usefixtures("cpu_with_bf16")
def test_the_precision_used_is_recorded_per_epoch(tmp_path: Path) -> None:
    for amp, name in ((False, "float32"), ("auto", "bfloat16")):
        config = from_dict(TrainConfig, {"batch_size": 100, "amp": amp, "device": "cpu"})
        with RunFolder.open(tmp_path / str(amp), {"train": {"amp": amp}}) as run:
            Trainer(ModelGroup([tiny_model()], ["tiny"]), IndependentObjective(["tiny"]),
                    config, run).fit(synthetic_split(300, 0), synthetic_split(100, 1))
        assert [r["precision"] for r in read_history(tmp_path / str(amp))] == [name]


@pytest.mark.usefixtures("cpu_with_bf16")
def test_evaluation_runs_in_float32_after_bfloat16_training() -> None:
    trainer, inside, _ = _step("auto")
    inside.clear()
    trainer.evaluate(synthetic_split(50, 1))  # what metrics.json and `evaluate` report
    assert inside == [torch.float32]
