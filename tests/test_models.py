"""Every registered model: shapes, learning, save/load, configs, and batching with torch.func."""

from __future__ import annotations

import io

import pytest
import torch
from torch.func import functional_call, stack_module_state

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.embedding import FeatureEmbedding
from mutualctr.models.layers import FeatureGate
from mutualctr.models.registry import build_model, get_model_class, model_config, model_names
from training_support import SMALL
from training_support import small_model_config as small

FEATURES = FeatureMap((
    Feature("user", "categorical", vocab_size=12),
    Feature("item", "categorical", vocab_size=9),
    Feature("tags", "sequence", vocab_size=8, max_len=3),
    Feature("price", "numeric"),
    Feature("hour", "categorical", vocab_size=6),
    Feature("age", "numeric"),
))


pytestmark = pytest.mark.usefixtures("one_thread")


def make_batch(rows: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    categorical = torch.stack(
        [torch.randint(1, f.vocab_size, (rows,), generator=g) for f in FEATURES.categorical], 1
    )
    tags = torch.randint(0, 8, (rows, 3), generator=g)
    numeric = torch.randn(rows, 2, generator=g)
    # a learnable target: user x item interaction, a tag effect and a numeric slope
    score = torch.sin(categorical[:, 0] * 1.3 + categorical[:, 1] * 0.7) * 2
    score = score + (tags == 3).float().sum(1) - numeric[:, 0]
    label = torch.bernoulli(torch.sigmoid(2 * score), generator=g)
    return Batch(categorical, numeric, (tags,), label)


def test_embedding_pools_sequences_and_scales_numerics() -> None:
    emb = FeatureEmbedding(FEATURES, 4)
    batch = make_batch(5)
    batch.sequences = (torch.tensor([[2, 3, 0]] * 5),)
    out = emb(batch)
    assert out.shape == (5, 6, 4)
    table = emb.table.weight
    torch.testing.assert_close(out[:, 0], table[batch.categorical[:, 0]])
    offset = 12 + 9 + 6  # sequence rows follow the three categorical fields
    torch.testing.assert_close(out[0, 3], (table[offset + 2] + table[offset + 3]) / 2)
    torch.testing.assert_close(out[:, 4], batch.numeric[:, :1] * emb.numeric_weight[0])


@pytest.mark.parametrize(("model", "overrides", "std"), [
    ("dnn", {}, 1e-4),  # as the categorical rows
    ("dnn", {"numeric_init": "xavier"}, (2 / 17) ** 0.5),  # FuxiCTR's nn.Linear(1, 16)
    ("me_dnn", {"numeric_init": "xavier", "num_embeddings": 2}, (2 / 17) ** 0.5),
    ("dien", {}, (2 / 17) ** 0.5),  # DIEN's default: FuxiCTR's start
])
def test_numeric_vectors_start_as_configured(model: str, overrides: dict, std: float) -> None:
    torch.manual_seed(0)
    numeric = FeatureMap((Feature("item", "categorical", vocab_size=9),
                          Feature("hist", "sequence", vocab_size=9, max_len=4,
                                  share_with="item"),
                          *(Feature(f"x{i}", "numeric") for i in range(300))))
    built = build_model(model, numeric, {"embedding_dim": 16, **overrides})
    weights = [m.numeric_weight for m in built.modules() if isinstance(m, FeatureEmbedding)
               and m.dim == 16]
    assert weights and all(w.std().item() == pytest.approx(std, rel=0.05) for w in weights)
    assert len(weights) == overrides.get("num_embeddings", 1)


def test_an_unknown_numeric_start_is_refused() -> None:
    with pytest.raises(ConfigError, match="numeric_init"):
        model_config("dnn", {"numeric_init": "uniform"})


def test_a_shared_feature_indexes_the_rows_of_the_feature_it_shares_with() -> None:
    shared = FeatureMap((
        Feature("item", "categorical", vocab_size=9),
        Feature("hist_item", "sequence", vocab_size=9, max_len=3, share_with="item"),
        Feature("hour", "categorical", vocab_size=6),
    ))
    emb = FeatureEmbedding(shared, 4)
    assert emb.table.num_embeddings == 9 + 6  # the history takes no rows of its own
    batch = Batch(torch.tensor([[4, 2], [5, 3]]), torch.zeros(2, 0),
                  (torch.tensor([[4, 7, 0], [0, 0, 0]]),), torch.zeros(2))
    embedded = emb.embed(batch)
    table = emb.table.weight
    torch.testing.assert_close(embedded.sequences[0][0, 0], table[4])  # item 4's own row
    torch.testing.assert_close(embedded.fields[0, 0], embedded.sequences[0][0, 0])
    # categorical fields come first, hour's rows after item's; then the pooled history
    torch.testing.assert_close(embedded.fields[0, 1], table[9 + 2])
    assert embedded.masks[0].tolist() == [[True, True, False], [False, False, False]]
    torch.testing.assert_close(embedded.fields[0, 2], (table[4] + table[7]) / 2)
    assert not embedded.fields[1, 2].any()  # an empty history pools to zeros


def test_sharing_with_an_unknown_feature_or_another_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="shares with 'movie'"):
        FeatureEmbedding(FeatureMap((Feature("item", "categorical", 9), Feature(
            "hist", "sequence", 9, 3, share_with="movie"))), 4)
    with pytest.raises(ValueError, match="vocabulary sizes differ"):
        FeatureEmbedding(FeatureMap((Feature("item", "categorical", 9), Feature(
            "hist", "sequence", 8, 3, share_with="item"))), 4)


@pytest.mark.parametrize("name", model_names())
def test_model_shapes(name: str) -> None:
    model = build_model(name, FEATURES, SMALL)
    out = model(make_batch(7))
    assert out.logit.shape == (7,)
    assert out.h.shape == (7, model.representation_dim)
    assert torch.isfinite(out.logit).all()


@pytest.mark.parametrize("name", model_names())
def test_model_lowers_the_loss(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, FEATURES, small(name))
    batch = make_batch(256)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_fn(model(batch).logit, batch.label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses[::10]


@pytest.mark.parametrize("name", model_names())
def test_state_dict_round_trip(name: str) -> None:
    torch.manual_seed(1)
    model = build_model(name, FEATURES, small(name))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = make_batch(32)
    for _ in range(2):  # move batch-norm statistics away from their initial values
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(
            model(batch).logit, batch.label
        ).backward()
        optimizer.step()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(2)
    clone = build_model(name, FEATURES, small(name))
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(model(batch).logit, clone(batch).logit)


@pytest.mark.parametrize("name", model_names())
def test_vmap_over_stacked_models_matches_each_model(name: str) -> None:
    """torch.func batching of identical models (eval mode: batch norm and dropout, where a
    model has them, need vmap's randomness/buffer options in training)."""
    models = [build_model(name, FEATURES, small(name)).eval() for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = models[0]
    batch = make_batch(6)

    def run(p: dict, b: dict) -> torch.Tensor:
        return functional_call(base, (p, b), (batch,)).logit

    stacked = torch.vmap(run)(params, buffers)
    expected = torch.stack([m(batch).logit for m in models])
    torch.testing.assert_close(stacked, expected)


ALL_CATEGORICAL = FeatureMap(tuple(Feature(f"c{i}", "categorical", vocab_size=7) for i in range(4)))


@pytest.mark.parametrize("name", model_names())
def test_all_categorical_inputs_give_no_empty_parameter_and_every_one_a_gradient(
    name: str,
) -> None:
    # DDP refuses a parameter without a gradient (a (0, dim) numeric weight had none)
    model = build_model(name, ALL_CATEGORICAL, small(name))
    assert [k for k, p in model.named_parameters() if not p.numel()] == []
    batch = Batch(torch.randint(1, 7, (8, 4)), torch.zeros(8, 0), (), torch.ones(8))
    model(batch).logit.sum().backward()
    assert [k for k, p in model.named_parameters() if p.grad is None] == []


def test_weights_saved_with_empty_numeric_weights_still_load() -> None:
    model = build_model("deepfm", ALL_CATEGORICAL, SMALL)
    old = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, FeatureEmbedding):
            old[f"{name}.numeric_weight"] = torch.empty(0, module.dim)
    assert "linear.weights.numeric_weight" in old
    model.load_state_dict(old)


def test_fm_head_starts_as_plain_fm() -> None:
    model = build_model("fm", FEATURES, SMALL)
    batch = make_batch(4)
    emb = model.embedding(batch)
    pairs = sum(
        (emb[:, i] * emb[:, j]).sum(-1) for i in range(6) for j in range(i + 1, 6)
    )
    torch.testing.assert_close(model(batch).logit, model.linear(batch) + pairs)


def test_linear_layers_start_as_fuxictr_and_own_inits_survive() -> None:
    """Every plain ``nn.Linear`` is Xavier-normal with zero bias (FuxiCTR's reset), while
    layers with their own ``init_weights`` keep it: FINAL's field gate starts as the identity
    gate and FinalMLP's feature-selection gates at exactly 1."""
    torch.manual_seed(0)
    model = build_model("dnn", FEATURES, {"embedding_dim": 64, "hidden_units": [256]})
    first = model.mlp.layers[0]
    fan_in, fan_out = first.weight.shape[1], first.weight.shape[0]
    expected = (2.0 / (fan_in + fan_out)) ** 0.5
    assert first.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert not first.bias.any()
    final = build_model("final", FEATURES, {**small("final"), "use_field_gate": True})
    assert not final.field_gate.linear.weight.any()
    assert bool((final.field_gate.linear.bias == 1).all())
    finalmlp = build_model("finalmlp", FEATURES, small("finalmlp"))
    gates = [m for m in finalmlp.modules() if isinstance(m, FeatureGate)]
    assert gates and all(not g.out.weight.any() and not g.out.bias.any() for g in gates)


def test_variants_build() -> None:
    variants = {
        "dcnv2": [{"structure": "stacked", "low_rank": 4, "num_experts": 3},
                  {"structure": "cross_only", "low_rank": 4}],
        "pnn": [{"product_type": "outer"}, {"product_type": "both"}],
        "fibinet": [{"bilinear_type": "field_all", "shared_bilinear": True, "use_linear": False},
                    {"bilinear_type": "field_each"}],
        "autoint": [{"hidden_units": [16, 8], "scale": True, "layer_norm": True}],
        "final": [{"num_blocks": 1, "use_field_gate": True, "residual_type": "sum"}],
        "finalmlp": [{"fs1_context": ["user"], "fs2_context": ["item", "tags"], "num_heads": 2},
                     {"use_feature_selection": False}],
        "dcnv3": [{"num_heads": 2}],
        "ecn": [{"num_heads": 2}],
    }
    batch = make_batch(5)
    for name, overrides in variants.items():
        for override in overrides:
            model = build_model(name, FEATURES, {**SMALL, **override})
            assert model(batch).h.shape == (5, model.representation_dim), (name, override)


def test_pnn_width_counts_products() -> None:
    both = build_model("pnn", FEATURES, {**SMALL, "product_type": "both"})
    assert both.mlp.layers[0].in_features == 6 * 8 + 15 + 8 * 8


def test_unknown_hyperparameter_names_closest() -> None:
    with pytest.raises(ConfigError, match=r"'hiden_units'.*did you mean 'hidden_units'"):
        build_model("deepfm", FEATURES, {"hiden_units": [8]})


def test_unknown_model_names_closest() -> None:
    with pytest.raises(ConfigError, match=r"'deepfn'.*did you mean 'deepfm'"):
        get_model_class("deepfn")


@pytest.mark.parametrize("overrides,message", [
    ({"hidden_units": 8}, "expected a list"),
    ({"hidden_units": [8, "x"]}, r"hidden_units\[1\]"),
    ({"dropout": -0.1}, "dropout: must be >= 0"),
    ({"batch_norm": 1}, "expected bool"),
])
def test_bad_values_are_config_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        model_config("deepfm", overrides)


def test_inconsistent_hyperparameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="num_heads"):
        build_model("finalmlp", FEATURES, {**SMALL, "num_heads": 3})
    with pytest.raises(ConfigError, match="expected one of"):
        model_config("pnn", {"product_type": "kernel"})


def test_config_coerces_lists_and_ints() -> None:
    config = model_config("dcn", {"hidden_units": [32, 16], "dropout": 0})
    assert config.hidden_units == (32, 16) and isinstance(config.dropout, float)
