"""The multi-embedding (ME) paradigm: K tables, the backbone per table, mean before the head."""

from __future__ import annotations

import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.models.registry import build_model, model_names

FEATURES = FeatureMap(
    (
        Feature("user", "categorical", vocab_size=7),
        Feature("item", "categorical", vocab_size=11),
        Feature("score", "numeric"),
    )
)


def make_batch(rows: int = 5, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        categorical=torch.stack(
            [torch.randint(1, 7, (rows,), generator=g), torch.randint(1, 11, (rows,), generator=g)],
            dim=1,
        ),
        numeric=torch.rand(rows, 1, generator=g),
        sequences=(),
        label=torch.randint(0, 2, (rows,), generator=g).float(),
    )


@pytest.mark.parametrize("base", ["dnn", "pnn", "dcnv2", "finalmlp"])
def test_me_variant_is_registered_with_k_tables(base: str) -> None:
    assert f"me_{base}" in model_names()
    model = build_model(f"me_{base}", FEATURES, {"num_embeddings": 3, "embedding_dim": 4})
    assert len(model.embedding.tables) == 3
    assert len(model.interactions) == 3
    assert not hasattr(model.interactions[0], "embedding")  # the ME model owns the tables
    out = model(make_batch())
    assert out.logit.shape == (5,)
    assert out.h.shape == (5, model.representation_dim)


def test_me_dnn_averages_per_table_backbones_before_the_head() -> None:
    torch.manual_seed(0)
    model = build_model("me_dnn", FEATURES, {"num_embeddings": 2, "embedding_dim": 3,
                                             "hidden_units": [8, 4], "embedding_init_std": 0.5})
    batch = make_batch()
    hs = [
        mlp_model.mlp(table(batch).flatten(1))
        for table, mlp_model in zip(model.embedding.tables, model.interactions, strict=True)
    ]
    expected = model.head((hs[0] + hs[1]) / 2).squeeze(-1)
    torch.testing.assert_close(model(batch).logit, expected)


def test_me_tables_are_independent_and_per_table_backbones_differ() -> None:
    torch.manual_seed(0)
    model = build_model("me_dnn", FEATURES, {"num_embeddings": 2})
    tables = model.embedding.tables
    assert tables[0].table.weight.data_ptr() != tables[1].table.weight.data_ptr()
    assert not torch.equal(tables[0].table.weight, tables[1].table.weight)
    mlps = [m.mlp for m in model.interactions]
    first_weights = [next(iter(mlp.parameters())) for mlp in mlps]
    assert not torch.equal(*first_weights)


def test_me_with_one_table_is_the_base_model() -> None:
    torch.manual_seed(0)
    base = build_model("dnn", FEATURES, {"embedding_dim": 4, "hidden_units": [8]})
    me = build_model("me_dnn", FEATURES, {"num_embeddings": 1, "embedding_dim": 4,
                                          "hidden_units": [8]})
    me.embedding.tables[0].load_state_dict(base.embedding.state_dict())
    me.interactions[0].mlp.load_state_dict(base.mlp.state_dict())
    me.head.load_state_dict(base.head.state_dict())
    batch = make_batch()
    torch.testing.assert_close(me(batch).logit, base(batch).logit)
