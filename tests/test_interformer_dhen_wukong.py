"""InterFormer, DHEN and Wukong: shapes, masking and empty histories on a store with behaviour
sequences, each model's mechanism, and their layers against hand computations."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.func import functional_call, stack_module_state

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel
from mutualctr.models.embedding import Embedded
from mutualctr.models.layers.dhen import CrossModule, DHENLayer, DotModule
from mutualctr.models.layers.interformer import PersonalizedFFN, recent_tokens
from mutualctr.models.layers.multihead import masked_softmax, rotate
from mutualctr.models.layers.wukong import FactorizationMachineBlock, WukongLayer
from mutualctr.models.registry import build_model
from training_support import behaviour_feature_map

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS, CATEGORIES, HISTORY = 30, 8, 6
FEATURES = behaviour_feature_map(20, ITEMS, CATEGORIES, HISTORY)
ITEM_CATEGORY = torch.randint(2, CATEGORIES, (ITEMS,), generator=torch.Generator().manual_seed(7))
SMALL = {"embedding_dim": 8, "hidden_units": [16]}
# every configuration under test; the ones reading behaviour positions are SEQUENCE_READERS
CONFIGS = {
    "interformer": ("interformer", {}),
    "dhen": ("dhen", {}),
    "dhen_tokens": ("dhen", {"sequence_tokens": True,
                             "interaction_modules": ["self_attention", "cross", "dot", "linear"]}),
    "dhen_concat": ("dhen", {"ensemble": "concat", "num_layers": 3}),
    "wukong": ("wukong", {"fmb_hidden_units": [16]}),
}
SEQUENCE_READERS = ["interformer", "dhen_tokens"]


def make_batch(rows: int, seed: int = 0, lengths: torch.Tensor | None = None) -> Batch:
    """Right-padded histories of items and their categories (length 0 included); the label
    says whether the target item was seen before, plus a price effect."""
    g = torch.Generator().manual_seed(seed)
    item = torch.randint(2, ITEMS, (rows,), generator=g)
    categorical = torch.stack([torch.randint(2, 20, (rows,), generator=g), item,
                               ITEM_CATEGORY[item], torch.randint(2, 6, (rows,), generator=g)], 1)
    if lengths is None:
        lengths = torch.randint(0, HISTORY + 1, (rows,), generator=g)
    history = torch.randint(2, ITEMS, (rows, HISTORY), generator=g)
    padding = torch.arange(HISTORY) >= lengths[:, None]
    history[padding] = 0
    categories = ITEM_CATEGORY[history].masked_fill(padding, 0)
    price = torch.randn(rows, 1, generator=g)
    seen = (history == item[:, None]).any(1).float()
    label = torch.bernoulli(torch.sigmoid(4 * seen - 2 + price[:, 0]), generator=g)
    return Batch(categorical, price, (history, categories), label)


def build(config: str, **overrides: object) -> CTRModel:
    name, own = CONFIGS[config]
    return build_model(name, FEATURES, {**SMALL, **own, **overrides})


@pytest.mark.parametrize("config", list(CONFIGS))
def test_forward_shapes_and_a_gradient_for_every_parameter(config: str) -> None:
    torch.manual_seed(0)
    model = build(config)
    out = model(make_batch(7))
    assert out.logit.shape == (7,) and out.h.shape == (7, model.representation_dim)
    out.logit.sum().backward()
    assert [k for k, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("config", SEQUENCE_READERS)
def test_what_sits_at_padded_positions_changes_nothing(config: str) -> None:
    torch.manual_seed(0)
    model = build(config).eval()
    batch = make_batch(16, lengths=torch.arange(16) % (HISTORY + 1))
    embedded = model.embedding.embed(batch)
    noisy = Embedded(embedded.fields, tuple(
        torch.where(mask.unsqueeze(-1), seq, 100 * torch.randn_like(seq))
        for seq, mask in zip(embedded.sequences, embedded.masks, strict=True)
    ), embedded.masks)
    with torch.no_grad():
        clean, changed = model.forward_embedded(batch, embedded), model.forward_embedded(batch,
                                                                                        noisy)
        present = embedded.sequences[0] + 1.0  # the same change at present positions matters
        moved = model.forward_embedded(batch, Embedded(
            embedded.fields, (present, *embedded.sequences[1:]), embedded.masks))
    torch.testing.assert_close(changed.logit, clean.logit)
    assert not torch.allclose(moved.logit, clean.logit)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_an_empty_history_gives_finite_outputs_and_gradients(config: str) -> None:
    torch.manual_seed(0)
    model = build(config)
    batch = make_batch(6, lengths=torch.zeros(6, dtype=torch.long))
    out = model(batch)
    assert torch.isfinite(out.logit).all() and torch.isfinite(out.h).all()
    out.logit.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("config", SEQUENCE_READERS)
def test_vmap_over_stacked_sequence_models_matches_each_model(config: str) -> None:
    models = [build(config).eval() for _ in range(3)]
    params, buffers = stack_module_state(models)
    batch = make_batch(5)

    def run(p: dict, b: dict) -> torch.Tensor:
        return functional_call(models[0], (p, b), (batch,)).logit

    torch.testing.assert_close(torch.vmap(run)(params, buffers),
                               torch.stack([m(batch).logit for m in models]))


# --- InterFormer -------------------------------------------------------------------------

def test_interformer_information_flows_both_ways() -> None:
    """Sequence -> non-sequence: the non-sequence tokens ``X`` after the layers change with the
    history (through ``S_sum`` in the Interaction Arch); non-sequence -> sequence: the behaviour
    tokens of ``S`` change with the user (through PFFN and the CLS tokens). With no layer, ``X``
    is the raw fields and ignores the history."""
    torch.manual_seed(0)
    model = build("interformer").eval()
    batch = make_batch(8, lengths=torch.full((8,), HISTORY))
    other_history = make_batch(8, seed=1, lengths=torch.full((8,), HISTORY)).sequences
    other_user = batch.categorical.clone()
    other_user[:, 0] = (other_user[:, 0] - 1) % 18 + 2  # another user id in 2..19

    def encode(categorical: torch.Tensor, sequences: tuple, layers: CTRModel = model) -> tuple:
        b = Batch(categorical, batch.numeric, sequences, batch.label)
        with torch.no_grad():
            return layers.encode(layers.embedding.embed(b))

    x, s, _ = encode(batch.categorical, batch.sequences)
    x_history, _, _ = encode(batch.categorical, other_history)
    _, s_user, _ = encode(other_user, batch.sequences)
    n_cls = model.config.num_cls_tokens
    assert (x - x_history).abs().amax(dim=(1, 2)).min() > 1e-4
    assert (s[:, n_cls:] - s_user[:, n_cls:]).abs().amax(dim=(1, 2)).min() > 1e-4
    flat = build("interformer", num_layers=0).eval()
    torch.testing.assert_close(encode(batch.categorical, batch.sequences, flat)[0],
                               encode(batch.categorical, other_history, flat)[0])


def test_recent_tokens_are_the_newest_behaviours_newest_first() -> None:
    behaviours = torch.arange(1.0, 5.0).view(1, 4, 1).expand(3, 4, 2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False], [False] * 4])
    recent = recent_tokens(behaviours, mask, 2)[..., 0]
    assert recent.tolist() == [[3.0, 2.0], [1.0, 0.0], [0.0, 0.0]]


def test_personalized_ffn_maps_each_row_by_its_own_summary() -> None:
    torch.manual_seed(0)
    pffn = PersonalizedFFN(summary_tokens=2, dim=3)
    x_sum, s = torch.randn(2, 2, 3), torch.randn(2, 4, 3)
    for row in range(2):
        w_pffn = x_sum[row].T @ pffn.weight  # App. A.2.2: X_sum W with X_sum in R^{d x n_sum}
        torch.testing.assert_close(pffn(x_sum, s)[row], s[row] @ w_pffn.T)


def test_interformer_histories_of_different_lengths_are_refused() -> None:
    features = FeatureMap((*FEATURES.features[:5], dataclasses.replace(
        FEATURES.features[5], max_len=HISTORY + 1), FEATURES.features[6]))
    with pytest.raises(ConfigError, match="lengths differ"):
        build_model("interformer", features, SMALL)
    with pytest.raises(ConfigError, match="even head size"):
        build_model("interformer", FEATURES, {**SMALL, "embedding_dim": 6})


def test_masked_softmax_attends_to_present_keys_only_and_to_none_in_an_empty_row() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[0], torch.softmax(torch.tensor([1.0, -1e9, 3.0]), 0))
    assert weights[1].tolist() == [0.0, 0.0, 0.0]


def test_rotary_scores_depend_on_the_position_difference_only() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)

    def score(pq: float, pk: float) -> torch.Tensor:
        return (rotate(q, torch.tensor([[pq]])) * rotate(k, torch.tensor([[pk]]))).sum(-1)

    torch.testing.assert_close(score(3.0, 1.0), score(7.0, 5.0))
    torch.testing.assert_close(score(0.0, 0.0), (q * k).sum(-1))
    assert not torch.allclose(score(3.0, 1.0), score(1.0, 1.0))


# --- DHEN --------------------------------------------------------------------------------

def test_dhen_layer_is_layer_norm_of_the_summed_modules_plus_the_input() -> None:
    torch.manual_seed(0)
    layer = DHENLayer(5, 5, 4, ["dot", "cross", "linear"])
    x = torch.randn(3, 5, 4)
    modules = sum(m(x) for m in layer.interactions)
    torch.testing.assert_close(layer(x), torch.nn.functional.layer_norm(
        modules + x, (4,), layer.norm.weight, layer.norm.bias))
    concat = DHENLayer(5, 5, 4, ["dot", "cross"], ensemble="concat")
    assert concat(x).shape == (3, 10, 4)  # the shortcut W_n maps 5 tokens to 10


def test_dhen_dot_and_cross_modules_by_hand() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4)
    dot = DotModule(3, 3, 4, hidden_units=())
    products = torch.stack([(x[:, i] * x[:, j]).sum(-1) for i, j in [(0, 1), (0, 2), (1, 2)]], 1)
    torch.testing.assert_close(dot(x), dot.out(products).view(2, 3, 4))
    cross = CrossModule(3, 3, 4, num_layers=1, low_rank=0)
    x0 = x.flatten(1)  # DCN-V2 without its skip: x_0 ⊙ (W x_0 + b)
    torch.testing.assert_close(cross(x), (x0 * cross.cross.layers[0].linear(x0)).view(2, 3, 4))


def test_dhen_slot_tokens_see_the_order_of_a_history_and_pooled_dhen_does_not() -> None:
    torch.manual_seed(0)
    batch = make_batch(8, lengths=torch.full((8,), HISTORY))
    reversed_batch = Batch(batch.categorical, batch.numeric,
                           tuple(s.flip(1) for s in batch.sequences), batch.label)
    pooled, tokens = build("dhen").eval(), build("dhen_tokens").eval()
    with torch.no_grad():
        torch.testing.assert_close(pooled(batch).logit, pooled(reversed_batch).logit)
        assert not torch.allclose(tokens(batch).logit, tokens(reversed_batch).logit)


def test_dhen_slot_tokens_need_the_sum_ensemble() -> None:
    with pytest.raises(ConfigError, match="needs ensemble 'sum'"):
        build("dhen_tokens", ensemble="concat")
    with pytest.raises(ConfigError, match="must be one of"):
        build("dhen", interaction_modules=["dot", "conv"])


# --- Wukong ------------------------------------------------------------------------------

def test_optimized_fm_is_the_gram_matrix_times_the_projection() -> None:
    torch.manual_seed(0)
    fmb = FactorizationMachineBlock(5, 3, 4, rank=2, hidden_units=[8])
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(fmb.interactions(x), torch.bmm(x, x.transpose(1, 2))
                               @ fmb.projection)


def test_fmb_sees_embeddings_only_through_their_inner_products() -> None:
    """``FM(X Q) = X Q Q^T X^T Y = FM(X)`` for an orthogonal ``Q``: the FMB reads the pairwise
    dot products of whole embeddings, not their coordinates, while the LCB does not."""
    torch.manual_seed(0)
    layer = WukongLayer(5, 3, 2, 4, rank=2, hidden_units=[8])
    x = torch.randn(3, 5, 4)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4))
    torch.testing.assert_close(layer.fmb(x @ rotation), layer.fmb(x))
    torch.testing.assert_close(layer.lcb(x @ rotation), layer.lcb(x) @ rotation)
    expected = torch.nn.functional.layer_norm(
        torch.cat([layer.fmb(x), layer.lcb(x)], 1) + layer.residual(x), (4,),
        layer.norm.weight, layer.norm.bias)
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (3, 5, 4)


def test_wukong_stack_has_n_f_plus_n_l_embeddings_per_layer() -> None:
    model = build("wukong", n_f=3, n_l=2, num_layers=3)
    emb = model.embedding(make_batch(4))
    assert emb.shape == (4, 7, 8)
    assert model.stack(emb).shape == (4, 3 + 2, 8)
    assert model.mlp.layers[0].in_features == (3 + 2) * 8
