"""DAGFM (Tian et al., WSDM 2023): the DAG propagation against a loop written from the
equations, training, the KD-DAGFM distillation loss by hand, the frozen teacher and embedding,
and the three-phase ``dagfm`` method end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mutualctr.config import from_dict
from mutualctr.data.batch import Batch
from mutualctr.data.loader import BatchLoader
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.experiments.ektf import plan as ektf_plan
from mutualctr.experiments.ektf import report as ektf_report
from mutualctr.methods import dagfm, runner
from mutualctr.methods.dagfm import PHASES, DAGFMConfig
from mutualctr.methods.ektf import students_ranked
from mutualctr.methods.members import MemberConfig
from mutualctr.models.base import ModelOutput
from mutualctr.models.dagfm import DAGFM, DAGInteraction
from mutualctr.models.embedding import Embedded
from mutualctr.models.registry import build_model
from mutualctr.runfolders.restore import load_trained
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.distillation import DistillationGroup
from mutualctr.training.objectives.kd_baselines import DAGFMDistillation
from mutualctr.training.optimizers import build_optimizer
from training_support import FEATURE_MAP, synthetic_split, write_store

pytestmark = pytest.mark.usefixtures("one_thread")

F, D, DEPTH = 3, 2, 2
TEACHER = MemberConfig(model="dcnv2", model_config={"hidden_units": [8], "num_cross_layers": 1,
                                                   "embedding_dim": 4})
STUDENT = MemberConfig(model="dagfm", model_config={"depth": 2, "embedding_dim": 4})


def reference_dag(layer: DAGInteraction, emb: torch.Tensor, kind: str) -> torch.Tensor:
    """The propagation written out field by field from the equations (edges i -> j, i <= j)."""
    fields = emb.shape[1]
    h0 = [sum(layer.connect[j, i] * emb[:, i] for i in range(fields)) for j in range(fields)]
    state, pooled = h0, [torch.stack([h.sum(-1) for h in h0], dim=1)]
    for t, p in enumerate(layer.p):
        new = []
        for j in range(fields):
            aggregated = torch.zeros_like(emb[:, 0])
            for i in range(j + 1):
                if kind == "inner":
                    aggregated = aggregated + p[i, j] * state[i]
                else:
                    score = (state[i] * p[i, j]).sum(-1, keepdim=True)
                    aggregated = aggregated + score * layer.q[t][i, j]
            new.append(h0[j] * aggregated)
        state = new
        pooled.append(torch.stack([h.sum(-1) for h in state], dim=1))
    return torch.cat(pooled, dim=1)


def random_layer(kind: str) -> DAGInteraction:
    torch.manual_seed(0)
    layer = DAGInteraction(F, D, DEPTH, kind).double()
    with torch.no_grad():  # every parameter random, the connect matrix included
        for param in layer.parameters():
            param.copy_(torch.randn_like(param))
    return layer


@pytest.mark.parametrize("kind", ["inner", "outer"])
def test_layer_matches_the_loop_and_ignores_the_lower_triangle(kind: str) -> None:
    layer = random_layer(kind)
    emb = torch.randn(4, F, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = layer(emb)
    assert out.shape == (4, F * (DEPTH + 1))
    torch.testing.assert_close(out, reference_dag(layer, emb, kind))
    out.sum().backward()
    lower = torch.ones(F, F).tril(-1).bool()  # edges j -> i with j > i do not exist
    for p in layer.p:
        assert torch.all(p.grad[lower] == 0) and p.grad[~lower].abs().sum() > 0


@pytest.mark.parametrize("kind", ["inner", "outer"])
def test_model_is_the_head_over_the_pooled_states(kind: str) -> None:
    three = FeatureMap(tuple(Feature(name, "categorical", 5) for name in "abc"))
    model = DAGFM(three, DAGFM.config_class(embedding_dim=D, depth=DEPTH,
                                            interaction=kind)).double()
    model.dag.load_state_dict(random_layer(kind).state_dict())
    emb = torch.randn(5, F, D, dtype=torch.float64)
    batch = Batch(torch.zeros(5, F, dtype=torch.long), torch.zeros(5, 0), (), torch.zeros(5))
    expected = model.head(reference_dag(model.dag, emb, kind)).squeeze(-1)
    torch.testing.assert_close(model.forward_embedded(batch, Embedded(emb)).logit, expected)


def test_init_connect_identity_mask_and_sizes() -> None:
    model = build_model("dagfm", FEATURE_MAP, {"embedding_dim": 4})
    fields = FEATURE_MAP.num_fields
    assert torch.equal(model.dag.connect, torch.eye(fields))
    assert model.representation_dim == fields * (3 + 1) and len(model.dag.p) == 3
    assert len(model.dag.q) == 0 and "dag.mask" not in model.state_dict()
    assert torch.equal(model.dag.mask[..., 0], torch.ones(fields, fields).triu())
    outer = build_model("dagfm", FEATURE_MAP, {"embedding_dim": 4, "interaction": "outer"})
    assert len(outer.dag.q) == 3 and outer.dag.q[0].shape == (fields, fields, 4)
    # xavier normal, gain 1.414: fan_in = fan_out = F * D
    std = torch.cat([p.flatten() for p in outer.dag.p]).std().item()
    assert std == pytest.approx(1.414 / math.sqrt(fields * 4), rel=0.25)
    with pytest.raises(ConfigError, match="expected one of"):
        build_model("dagfm", FEATURE_MAP, {"interaction": "kernel"})


@pytest.mark.parametrize("kind", ["inner", "outer"])
def test_dagfm_lowers_the_loss(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model("dagfm", FEATURE_MAP, {"embedding_dim": 4, "interaction": kind,
                                               "embedding_init_std": 0.1})
    batch = next(BatchLoader(synthetic_split(512, 0), 512).batches(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch).logit,
                                                                    batch.label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses[::10]


# -- the distillation objective --------------------------------------------------------------

LABEL = torch.tensor([1.0, 0.0])
BATCH = Batch(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 0), (), LABEL)


def test_distillation_loss_and_gradient_by_hand() -> None:
    teacher = torch.tensor([2.0, -1.0], requires_grad=True)
    student = torch.tensor([0.0, 1.0], requires_grad=True)
    objective = DAGFMDistillation(["t", "s"], alpha=0.5, beta=2.0)
    out = objective([ModelOutput(teacher, torch.zeros(2, 1)),
                     ModelOutput(student, torch.zeros(2, 1))], BATCH)
    # BCE: y=1, z=0 -> log 2; y=0, z=1 -> log(1 + e). MSE: ((2 - 0)^2 + (-1 - 1)^2) / 2 = 4
    bce = (math.log(2) + math.log(1 + math.e)) / 2
    assert float(out.parts["bce"]) == pytest.approx(0.5 * bce)
    assert float(out.parts["kd"]) == pytest.approx(2.0 * 4.0)
    assert float(out.loss.detach()) == pytest.approx(0.5 * bce + 8.0)
    out.loss.backward()
    # d/dz_s = alpha (sigmoid(z_s) - y) / B + beta * 2 (z_s - z_t) / B
    sig1 = 1 / (1 + math.exp(-1))
    assert student.grad.tolist() == pytest.approx([0.5 * -0.5 / 2 + 2 * 2 * -2 / 2,
                                                   0.5 * sig1 / 2 + 2 * 2 * 2 / 2])
    assert teacher.grad is None
    assert set(out.predictions) == {"t", "s"}
    assert out.predictions["s"].tolist() == pytest.approx([0.5, sig1])
    assert objective.monitor == "s" and not objective.per_member


def test_default_weights_are_the_authors_port() -> None:
    """alpha = 1 on the BCE, beta = 92.16 on the logit MSE (RecBole's KD_DAGFM.yaml, the port
    of the authors' code): by hand, with the logits above, 1 * bce + 92.16 * 4."""
    assert (DAGFMConfig().alpha, DAGFMConfig().beta) == (1.0, 92.16)
    objective = DAGFMDistillation(["t", "s"])
    out = objective([ModelOutput(torch.tensor([2.0, -1.0]), torch.zeros(2, 1)),
                     ModelOutput(torch.tensor([0.0, 1.0]), torch.zeros(2, 1))], BATCH)
    bce = (math.log(2) + math.log(1 + math.e)) / 2
    assert float(out.loss) == pytest.approx(bce + 368.64)


def test_distillation_needs_a_teacher_and_a_student() -> None:
    with pytest.raises(ConfigError, match="teacher, student"):
        DAGFMDistillation(["a", "b", "c"])
    with pytest.raises(ConfigError, match="alpha and beta"):
        DAGFMDistillation(["a", "b"], alpha=-1.0)


def test_no_gradient_reaches_the_teacher_or_the_embedding() -> None:
    torch.manual_seed(0)
    teacher = build_model(TEACHER.model, FEATURE_MAP, {**TEACHER.model_config, "dropout": 0.5})
    student = build_model(STUDENT.model, FEATURE_MAP, STUDENT.model_config)
    names = ["dcnv2_teacher", "dagfm_1"]
    group, objective = DistillationGroup(teacher, student, names), DAGFMDistillation(names)
    both = torch.nn.ModuleList([group, objective])  # what the trainer optimises
    both.train()
    assert not teacher.training and not group.embedding.training and student.training
    optimised = {id(p) for g in build_optimizer(both, from_dict(TrainConfig, {})).param_groups
                 for p in g["params"]}
    assert optimised == {id(p) for p in student.parameters()}
    batch = next(BatchLoader(synthetic_split(64, 0), 64).batches(0))
    objective(group(batch), batch).loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is None for p in group.embedding.parameters())
    assert student.head.weight.grad is not None
    assert student.dag.p[0].grad.abs().sum() > 0
    with torch.no_grad():  # the teacher is deterministic (eval mode: no dropout)
        assert torch.equal(group(batch)[0].logit, group(batch)[0].logit)


# -- the three phases end to end -------------------------------------------------------------

TRAIN = {"epochs": 1, "batch_size": 256, "seed": 3, "device": "cpu", "num_threads": 1,
         "embedding_l2": 0.0}


@pytest.fixture(scope="module")
def kd_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    store = write_store(tmp_path_factory.mktemp("store"), {"train": 2000, "valid": 500,
                                                           "test": 500})
    out = tmp_path_factory.mktemp("run") / "kd_dagfm"
    metrics = runner.run(dagfm.METHOD, kd_config(store), out).metrics
    return store, out, metrics


def kd_config(store: Path) -> DAGFMConfig:
    return DAGFMConfig(data=str(store), teacher=TEACHER, student=STUDENT,
                       train=from_dict(TrainConfig, TRAIN))


def test_method_defaults_and_checks() -> None:
    assert DAGFMConfig().teacher == MemberConfig(model="dcnv2")
    assert DAGFMConfig().student == MemberConfig(model="dagfm")
    partial = from_dict(DAGFMConfig, {"student": {"model_config": {"depth": 2}}})
    assert partial.student == MemberConfig(model="dagfm", model_config={"depth": 2})
    with pytest.raises(ConfigError, match=r"unknown config key 'student\.depth'"):
        from_dict(DAGFMConfig, {"student": {"model": "dagfm", "depth": 2}})


def test_three_phases_report_the_student_and_the_teacher(kd_run: tuple[Path, Path, dict]
                                                         ) -> None:
    _, out, metrics = kd_run
    for phase in PHASES:
        assert (out / phase / "metrics.json").is_file() and (out / phase / "model.pt").is_file()
    assert set(metrics) == {"valid", "test"}
    assert set(metrics["valid"]) == set(metrics["test"]) == {"dagfm_1", "dcnv2_teacher"}
    assert students_ranked(metrics) == ["dagfm_1"]
    assert metrics["test"]["dcnv2_teacher"]["auc"] > 0.6
    assert metrics["test"]["dagfm_1"] == json.loads((out / "finetune/metrics.json").read_text())[
        "test"]["dagfm_1"]
    history = [json.loads(line)
               for line in (out / "distill/metrics.jsonl").read_text().splitlines()]
    assert history[-1]["best_epoch"].keys() == {"dagfm_1"}  # early stopping watches the student


def test_distillation_kept_the_teacher_and_embedding_and_finetuning_moved_them(
        kd_run: tuple[Path, Path, dict]) -> None:
    _, out, _ = kd_run
    teacher = load_trained(out / "teacher").group.models[0].state_dict()
    distilled = load_trained(out / "distill").group
    for key, value in distilled.models[0].state_dict().items():
        assert torch.equal(value, teacher[key]), key
    table = "embedding.table.weight"
    assert torch.equal(distilled.models[1].state_dict()[table], teacher[table])
    finetuned = load_trained(out / "finetune").group.models[0].state_dict()
    assert not torch.equal(finetuned[table], teacher[table])
    assert not torch.equal(finetuned["dag.p.0"], distilled.models[1].state_dict()["dag.p.0"])


def test_finished_phases_are_reused_and_a_missing_one_is_retrained(
        kd_run: tuple[Path, Path, dict]) -> None:
    store, out, metrics = kd_run
    stamps = {phase: (out / phase / "model.pt").stat().st_mtime_ns for phase in PHASES}
    assert runner.run(dagfm.METHOD, kd_config(store), out).metrics == metrics
    assert {p: (out / p / "model.pt").stat().st_mtime_ns for p in PHASES} == stamps
    (out / "finetune" / "metrics.json").unlink()  # as if interrupted in the last phase
    again = runner.run(dagfm.METHOD, kd_config(store), out).metrics
    assert (out / "teacher/model.pt").stat().st_mtime_ns == stamps["teacher"]
    assert (out / "distill/model.pt").stat().st_mtime_ns == stamps["distill"]
    assert (out / "finetune/model.pt").stat().st_mtime_ns != stamps["finetune"]
    assert again == metrics  # the finetuning resumed from its finished checkpoint


def test_table5_row_is_the_teacher_and_its_one_student() -> None:
    size = ektf_plan.SIZES["tiny"]
    runs = ektf_plan.configurations(size, ["kt"])
    method = runs["kd_dagfm"].config
    assert isinstance(method, DAGFMConfig) and method.student.model == "dagfm"
    assert method.teacher is not None and method.teacher.model == "dcnv2"

    def m(auc: float) -> dict:
        return {"auc": auc, "logloss": 1.0 - auc}
    group = {"valid": {"teacher": m(0.8), "s0": m(0.7), "s1": m(0.75)},
             "test": {"teacher": m(0.79), "s0": m(0.69), "s1": m(0.74)}}
    kd = {"valid": {"dagfm_1": m(0.7), "dcnv2_teacher": m(0.9)},
          "test": {"dagfm_1": m(0.72), "dcnv2_teacher": m(0.81)}}
    results = {label: [kd if label == "kd_dagfm" else group] for label in runs}
    rows = {r["method"]: r for r in ektf_report.table5(results, size)}
    row = rows["KD-DAGFM (DCNv2 teacher)"]
    assert row["best_student_auc"] == "0.7200" and row["best_student_logloss"] == "0.2800"
    assert row["teacher_auc"] == "0.8100" and row["worst_student_auc"] == ""
    assert rows["EKTF"]["teacher_auc"] == "0.7900" and rows["EKTF"]["best_student_auc"] == "0.7400"
