"""What training and serving a comparison's rows cost (mutualctr.comparison.costs)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import mutualctr
from mutualctr.comparison.costs import (
    BACKWARD_FACTOR,
    best_student,
    ensemble_cost,
    forward_flops_per_row,
    latency_ms_per_1000,
    sample_inputs,
    served_member,
    served_run,
    serving_cost,
    total,
    trained_members,
    training_cost,
)
from mutualctr.comparison.outcomes import TrainingCost
from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.methods.ektf import export_best_student
from mutualctr.runfolders.folder import read_history
from mutualctr.serving.export import as_batch, load_torchscript
from training_support import STORE_SHAPES

pytestmark = pytest.mark.usefixtures("one_thread")

EMBEDDING_DIM = 4
TRAIN = {"epochs": 1, "batch_size": 100, "num_threads": 1, "log_every_steps": 1000}


def dnn(hidden: int) -> dict:
    return {"model": "dnn",
            "model_config": {"hidden_units": [hidden], "embedding_dim": EMBEDDING_DIM}}


def dnn_flops(fields: int, hidden: int) -> int:
    """A one-layer DNN's multiply-adds x 2: its hidden layer over the flattened field
    embeddings and its head; lookups, ReLU, the sigmoid, the pooling of sequences and numeric
    values times their vectors count 0."""
    return 2 * fields * EMBEDDING_DIM * hidden + 2 * hidden * 1


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("costs")


@pytest.fixture(scope="module")
def store(work: Path) -> EncodedStore:
    return EncodedStore.open(STORE_SHAPES["categorical and numeric"](work / "store", 600))


def train(method: str, store: EncodedStore, out: Path, epochs: int = 1, **settings) -> Path:
    mutualctr.train(method, data=store.root, out=out, train={**TRAIN, "epochs": epochs},
                    **settings)
    return out


@pytest.fixture(scope="module")
def alone(store: EncodedStore, work: Path) -> list[Path]:
    """Two single DNNs of hidden widths 8 and 16."""
    return [train("train", store, work / f"alone{hidden}", **dnn(hidden)) for hidden in (8, 16)]


@pytest.fixture(scope="module")
def mutual(store: EncodedStore, work: Path) -> Path:
    """Mutual learning of two DNNs (widths 8 and 16) for 2 epochs."""
    return train("mutual", store, work / "mutual", epochs=2, members=[dnn(8), dnn(16)])


@pytest.fixture(scope="module")
def distill(store: EncodedStore, work: Path, alone: list[Path]) -> Path:
    """A DNN student of width 8 taught by the two alone runs."""
    return train("distill", store, work / "distill",
                 teachers=[{"init": str(run)} for run in alone], student=dnn(8))


@pytest.mark.parametrize("shape", ["categorical and numeric", "multi-hot and history"])
def test_forward_flops_per_row_of_a_dnn_are_its_linear_layers(shape: str, tmp_path: Path
                                                              ) -> None:
    data = EncodedStore.open(STORE_SHAPES[shape](tmp_path / "store", 300))
    run = train("train", data, tmp_path / "run", **dnn(8))
    model = served_run(run).group.models[0]
    fields = len(data.feature_map.features)
    expected = dnn_flops(fields, 8)
    inputs = sample_inputs(data.split("valid"), 256)
    assert forward_flops_per_row(lambda *t: model(as_batch(t)), inputs) == expected
    # the exported file, fed the signature's tensors (sequences included), counts the same
    assert serving_cost(served_run(run), data.split("test")).flops_per_row == expected


def test_sample_inputs_are_the_rows_repeated_in_the_exported_layout(store: EncodedStore
                                                                    ) -> None:
    valid = store.split("valid")
    categorical, numeric = sample_inputs(valid, len(valid) + 3)
    assert categorical.dtype == torch.int64 and numeric.dtype == torch.float32
    assert categorical.shape == (len(valid) + 3, len(store.feature_map.categorical))
    assert torch.equal(categorical[-3:], torch.tensor(valid.categorical[:3]).long())


class FakeTime:
    """A clock that a fake model advances: 2^-10 s a call plus 2^-20 s a row (exact in
    binary)."""

    CALL, ROW = 2.0**-10, 2.0**-20

    def __init__(self) -> None:
        self.now, self.rows = 0.0, []

    def clock(self) -> float:
        return self.now

    def model(self, categorical: torch.Tensor, numeric: torch.Tensor) -> None:
        self.rows.append(categorical.shape[0])
        self.now += self.CALL + self.ROW * categorical.shape[0]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_latency_is_the_timed_stretch_per_row_after_warm_up(batch_size: int) -> None:
    fake = FakeTime()
    inputs = (torch.arange(16).view(8, 2), torch.zeros(8, 0))
    ms = latency_ms_per_1000(fake.model, inputs, batch_size, warmup=3, min_calls=10,
                             min_seconds=0.1, repeats=1, clock=fake.clock)
    per_call = FakeTime.CALL + FakeTime.ROW * batch_size
    timed = -(-0.1 // per_call)  # ceil(0.1 s / per_call): more than min_calls
    assert timed > 10
    assert len(fake.rows) == 3 + timed and set(fake.rows) == {batch_size}
    assert ms == pytest.approx(1e6 * per_call / batch_size, rel=1e-12)


def test_latency_times_at_least_min_calls() -> None:
    fake = FakeTime()
    inputs = (torch.zeros(2, 1), torch.zeros(2, 0))
    ms = latency_ms_per_1000(fake.model, inputs, 2, warmup=0, min_calls=7, min_seconds=0.0,
                             repeats=1, clock=fake.clock)
    assert len(fake.rows) == 7
    assert ms == pytest.approx(1e6 * (FakeTime.CALL + 2 * FakeTime.ROW) / 2, rel=1e-12)


def test_latency_keeps_the_fastest_of_its_stretches() -> None:
    fake = FakeTime()
    slow = fake.model

    def busy_first(categorical: torch.Tensor, numeric: torch.Tensor) -> None:
        slow(categorical, numeric)
        if len(fake.rows) <= 5:  # the first stretch's calls meet a busy machine
            fake.now += 1.0
    inputs = (torch.zeros(2, 1), torch.zeros(2, 0))
    ms = latency_ms_per_1000(busy_first, inputs, 2, warmup=0, min_calls=5, min_seconds=0.0,
                             repeats=3, clock=fake.clock)
    assert len(fake.rows) == 15
    assert ms == pytest.approx(1e6 * (FakeTime.CALL + 2 * FakeTime.ROW) / 2, rel=1e-12)


def test_latency_needs_a_full_batch() -> None:
    with pytest.raises(ValueError, match="at least 4 rows"):
        latency_ms_per_1000(lambda *t: None, (torch.zeros(3, 1),), 4)


def test_exported_latency_agrees_with_timing_the_loaded_file(
    alone: list[Path], store: EncodedStore, tmp_path: Path,
) -> None:
    cost = serving_cost(served_run(alone[1]), store.split("test"))
    exported = load_torchscript(mutualctr.load(alone[1], device="cpu").export(
        "torchscript", tmp_path / "model.pt"))
    batch = next(BatchLoader(store.split("train"), 1024).batches(0))
    inputs = (batch.categorical, batch.numeric)
    with torch.no_grad():
        for _ in range(3):
            exported(*inputs)
        rounds = []  # the fastest of five rounds: load elsewhere only slows a round down
        for _ in range(5):
            calls, start = 10, time.perf_counter()
            for _ in range(calls):
                exported(*inputs)
            rounds.append(1e6 * (time.perf_counter() - start) / (calls * len(batch)))
        direct = min(rounds)
    assert direct / 3 < cost.ms_per_1000_batch1024 < direct * 3
    # one row at a time costs more per row than a batch of 1024
    assert cost.ms_per_1000_batch1 > cost.ms_per_1000_batch1024


def test_a_single_run_is_one_model_with_its_parameters_and_flops(
    alone: list[Path], store: EncodedStore,
) -> None:
    cost = serving_cost(served_run(alone[0]), store.split("test"))
    model = served_run(alone[0]).group.models[0]
    assert cost.parameters == sum(p.numel() for p in model.parameters())
    assert cost.flops_per_row == dnn_flops(len(store.feature_map.features), 8)
    assert (cost.models, cost.single_model) == (1, True)


def test_an_ensemble_costs_the_sum_of_its_runs(alone: list[Path], store: EncodedStore) -> None:
    parts = [serving_cost(served_run(run), store.split("test")) for run in alone]
    ensemble = ensemble_cost(parts)
    assert ensemble.parameters == parts[0].parameters + parts[1].parameters
    assert ensemble.flops_per_row == dnn_flops(4, 8) + dnn_flops(4, 16)
    assert ensemble.ms_per_1000_batch1 == pytest.approx(
        parts[0].ms_per_1000_batch1 + parts[1].ms_per_1000_batch1)
    assert ensemble.ms_per_1000_batch1024 == pytest.approx(
        parts[0].ms_per_1000_batch1024 + parts[1].ms_per_1000_batch1024)
    assert (ensemble.models, ensemble.single_model) == (2, False)


def test_a_member_alone_is_what_export_best_student_writes(
    mutual: Path, store: EncodedStore, tmp_path: Path,
) -> None:
    name = export_best_student(mutual, tmp_path / "best")
    assert name == best_student(mutual)
    written = serving_cost(served_run(tmp_path / "best"), store.split("test"))
    member = serving_cost(served_member(mutual, name), store.split("test"))
    assert (member.parameters, member.flops_per_row) == (written.parameters,
                                                          written.flops_per_row)
    assert (member.models, member.single_model) == (1, True)


def test_a_group_served_as_one_network_runs_every_member(
    mutual: Path, store: EncodedStore,
) -> None:
    group = serving_cost(served_run(mutual), store.split("test"))
    members = [serving_cost(served_member(mutual, name), store.split("test"))
               for name in served_run(mutual).group.names]
    assert group.parameters == sum(m.parameters for m in members)
    assert group.flops_per_row == dnn_flops(4, 8) + dnn_flops(4, 16)
    assert (group.models, group.single_model) == (2, True)


def test_a_distilled_student_is_served_without_its_teachers(
    distill: Path, store: EncodedStore,
) -> None:
    assert best_student(distill) == "student"
    cost = serving_cost(served_member(distill, "student"), store.split("test"))
    assert cost.flops_per_row == dnn_flops(4, 8)
    assert cost.models == 1
    with pytest.raises(ConfigError, match="no member"):
        served_member(distill, "nobody")


def test_training_cost_of_one_run(alone: list[Path], store: EncodedStore) -> None:
    cost = training_cost(alone[0])
    history = read_history(alone[0])
    train_rows = len(store.split("train"))
    assert cost.member_epochs == 1
    assert cost.seconds == sum(record["seconds"] for record in history) > 0
    assert cost.flops == 3 * dnn_flops(4, 8) * train_rows * 1


def test_a_mutual_pair_for_two_epochs_is_four_member_epochs(mutual: Path, store: EncodedStore
                                                            ) -> None:
    cost = training_cost(mutual)
    assert len(read_history(mutual)) == 2
    assert trained_members(mutual) == [True, True]
    assert cost.member_epochs == 4
    assert cost.flops == 3 * (dnn_flops(4, 8) + dnn_flops(4, 16)) * len(store.split("train")) * 2


def test_frozen_teachers_are_not_trained_but_run_forward(distill: Path, store: EncodedStore
                                                         ) -> None:
    assert trained_members(distill) == [False, False, True]
    cost = training_cost(distill)
    assert cost.member_epochs == 1
    # the student's forward and backward, and each teacher's forward pass
    per_row = BACKWARD_FACTOR * dnn_flops(4, 8) + dnn_flops(4, 8) + dnn_flops(4, 16)
    assert cost.flops == per_row * len(store.split("train"))


def test_total_adds_runs_up(alone: list[Path], distill: Path) -> None:
    parts = [training_cost(run) for run in [*alone, distill]]
    summed = total(parts)
    assert (summed.member_epochs, summed.flops) == (3, sum(p.flops for p in parts))
    assert summed.seconds == pytest.approx(sum(p.seconds for p in parts))
    assert total([]) == TrainingCost(0.0, 0.0, 0.0)
