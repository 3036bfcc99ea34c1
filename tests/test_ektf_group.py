"""The shared-embedding student group and the export of one student."""

from __future__ import annotations

import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.experiments.ektf import plan as ektf_plan
from mutualctr.methods.ektf import EKTFConfig, build_students, latest_students, mlp_students
from mutualctr.methods.members import MemberConfig, positional_names
from mutualctr.models.registry import build_model
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup, export_student

FEATURE_MAP = FeatureMap((
    Feature("user", "categorical", vocab_size=7),
    Feature("item", "categorical", vocab_size=5),
    Feature("price", "numeric"),
))


def make_batch(n: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        categorical=torch.stack([torch.randint(0, 7, (n,), generator=g),
                                 torch.randint(0, 5, (n,), generator=g)], dim=1),
        numeric=torch.rand(n, 1, generator=g),
        sequences=(),
        label=torch.randint(0, 2, (n,), generator=g).float(),
    )


def small_group(k: int = 3) -> SharedEmbeddingGroup:
    torch.manual_seed(0)
    specs = mlp_students(k, {"hidden_units": [8, 4], "embedding_dim": 4})
    return build_students(FEATURE_MAP, specs)


def test_one_embedding_table_for_all_students() -> None:
    group = small_group()
    assert group.names == ["dnn_1", "dnn_2", "dnn_3"]
    assert all(student.embedding is None for student in group.models)
    tables = [n for n, _ in group.named_parameters() if "table" in n]
    assert tables == ["embedding.table.weight"]
    outputs = group(make_batch())
    sum(o.logit.sum() for o in outputs).backward()
    # each student's loss reaches the shared table
    assert group.embedding.table.weight.grad.abs().sum() > 0


def test_students_differ_but_share_the_lookup() -> None:
    group = small_group().eval()
    batch = make_batch()
    emb = group.embedding(batch)
    outputs = group(batch)
    for student, output in zip(group.models, outputs, strict=True):
        h, _ = student.represent(batch, emb)
        assert torch.allclose(output.h, h)
    assert not torch.allclose(outputs[0].logit, outputs[1].logit)


def test_exported_student_predicts_like_it_did_in_the_group() -> None:
    group = small_group().eval()
    batch = make_batch()
    expected = group(batch)[1].logit
    alone = export_student(group, "dnn_2").eval()
    assert torch.allclose(alone(batch).logit, expected)
    # a copy: training the exported model leaves the group untouched
    alone.embedding.table.weight.data.add_(1.0)
    assert torch.allclose(group(batch)[1].logit, expected)
    # its state loads into a freshly built registry model of the same architecture
    fresh = build_model("dnn", FEATURE_MAP, {"hidden_units": [8, 4], "batch_norm": True,
                                             "dropout": 0.1, "embedding_dim": 4})
    fresh.load_state_dict(export_student(group, "dnn_2").state_dict())
    assert torch.allclose(fresh.eval()(batch).logit, expected)


def test_heterogeneous_students_and_errors() -> None:
    specs = [MemberConfig(model="dnn", model_config={"hidden_units": [4], "embedding_dim": 4}),
             MemberConfig(model="deepfm",
                          model_config={"hidden_units": [4], "embedding_dim": 4})]
    group = build_students(FEATURE_MAP, specs)
    assert positional_names(specs) == ["dnn_1", "deepfm_2"]
    assert [o.logit.shape for o in group(make_batch())] == [torch.Size([6])] * 2
    with pytest.raises(ConfigError, match="no student"):
        export_student(group, "pnn_1")
    models = [build_model("dnn", FEATURE_MAP, {"embedding_dim": d}) for d in (4, 8)]
    with pytest.raises(ConfigError, match="one embedding_dim"):
        SharedEmbeddingGroup(models, ["a", "b"])
    with pytest.raises(ConfigError, match="one embedding_dim"):  # no silent override
        build_students(FEATURE_MAP, [*specs, MemberConfig(model="lr")])
    with pytest.raises(ConfigError, match="train from scratch"):
        EKTFConfig(students=[MemberConfig(model="dnn", init="runs/dnn")])


def test_latest_final_student_has_one_gated_block() -> None:
    """EKTF_Latest's FINAL is FINAL(1B) (Li et al., section 4.3.3 and Table 4: EKTF_FINAL(1B)
    against the FINAL(2B) baseline); the single FINAL of Table 2 keeps two blocks."""
    specs = latest_students()
    assert [s.model for s in specs] == ["pnn", "final", "ecn"]
    assert all(s.model_config.get("embedding_dim", 16) == 16 for s in specs)
    final = build_students(FEATURE_MAP, specs).models[1]
    assert final.config.num_blocks == 1
    assert not hasattr(final, "block2") and hasattr(final, "field_gate")
    single = ektf_plan.configurations(ektf_plan.SIZES["tiny"], ["table2"])["single_final"]
    assert single.config.students[0].model_config.get("num_blocks", 2) == 2
