"""The memory a run's parameters need, estimated on the meta device before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from mutualctr.cli import main
from mutualctr.methods import mutual
from mutualctr.methods import train as train_method
from mutualctr.methods.members import MemberConfig
from mutualctr.training import memory
from training_support import write_store


def test_trained_parameters_count_four_copies_and_frozen_ones_one() -> None:
    trained, frozen = nn.Linear(3, 2), nn.Linear(5, 1)  # 8 and 6 parameters
    frozen.requires_grad_(False)
    found = memory.estimate(trained, frozen, trained)  # a module given twice counts once
    assert (found.trained, found.frozen) == (8, 6)
    assert found.bytes == 4 * (4 * 8 + 6)


class _Built:
    """A method's ``build`` result: a table of ``rows`` x 4 and a 4 -> 1 head."""

    def __init__(self, rows: int) -> None:
        self.group = nn.Embedding(rows, 4)
        self.objective = nn.Linear(4, 1)


def test_a_billion_row_table_is_estimated_without_being_allocated() -> None:
    found = memory.estimate_build(_Built, 1_000_000_000)
    assert (found.trained, found.frozen) == (4_000_000_005, 0)
    # 4 bytes x 4 copies x 4,000,000,005 = 64,000,000,080 bytes = 59.60 GiB
    with pytest.raises(memory.InsufficientMemoryError,
                       match=r"need 59\.60 GiB .* and 8\.00 GiB are available"):
        memory.check_fits(found, 8 * memory.GIB)
    assert "of 64.00 GiB available" in memory.check_fits(found, 64 * memory.GIB)


def test_estimate_of_a_method_build_matches_the_built_parameters(tmp_path: Path) -> None:
    from mutualctr.data.store import EncodedStore

    store = EncodedStore.open(write_store(tmp_path / "s", {"train": 50, "valid": 20}))
    config = mutual.MutualConfig(members=[MemberConfig(model="deepfm")] * 4)
    config = mutual.METHOD.resolve(config)
    estimated = memory.estimate_build(mutual.METHOD.build, config, store)
    built = mutual.METHOD.build(config, store)
    real = sum(p.numel() for p in built.group.parameters()) + sum(
        p.numel() for p in built.objective.parameters())
    assert estimated.trained + estimated.frozen == real
    single = memory.estimate_build(train_method.METHOD.build, train_method.METHOD.resolve(
        train_method.IndependentConfig(model="deepfm")), store)
    assert estimated.trained == 4 * single.trained


def test_a_run_that_does_not_fit_stops_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    store = write_store(tmp_path / "s", {"train": 50, "valid": 20})
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    args = ["train", "--data", str(store), "--model", "deepfm", "--out", str(tmp_path / "run")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "does not fit in memory" in err and "0.00 GiB are available" in err
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * memory.GIB)
    assert main([*args, "--epochs", "1"]) == 0
    assert "GiB for weights, gradients and Adam's moments" in capsys.readouterr().err


def test_available_memory_is_read_from_the_kernel() -> None:
    found = memory.available_bytes()
    assert found is None or 0 < found < 1 << 50
