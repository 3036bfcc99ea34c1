"""DIN and DIEN: their layers against hand-computed numbers and ``nn.GRU``, the target-history
pairing, masking and empty histories, learning what a pooled DNN does not, and DIEN's
auxiliary loss through the objectives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from mutualctr.data.batch import Batch
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.metrics import auc
from mutualctr.models.base import CTRModel, ModelOutput
from mutualctr.models.embedding import Embedded
from mutualctr.models.layers.sequence import (
    AttentionalGRU,
    BilinearAttention,
    Dice,
    TargetAttention,
    masked_softmax,
)
from mutualctr.models.registry import build_model
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup
from mutualctr.training.objectives.auxiliary import auxiliary_loss
from mutualctr.training.objectives.cetnet import CETNetObjective
from mutualctr.training.objectives.ektf import EKTFObjective
from mutualctr.training.objectives.independent import IndependentObjective
from mutualctr.training.objectives.kd_baselines import OnlineKD
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.trainer import _Step
from training_support import behaviour_feature_map

pytestmark = pytest.mark.usefixtures("one_thread")

ITEMS, CATEGORIES, LENGTH = 40, 7, 8
FEATURES = behaviour_feature_map(30, ITEMS, CATEGORIES, LENGTH)
SMALL = {"embedding_dim": 8, "hidden_units": [32, 16]}
MODELS = ("din", "dien")


def category_of(items: torch.Tensor) -> torch.Tensor:
    return torch.where(items > 0, items % (CATEGORIES - 2) + 2, 0)


def make_batch(rows: int, seed: int, chained: bool = False) -> Batch:
    """Histories of 0..LENGTH items (right-padded; ``chained``: each item follows from the one
    before with probability 0.9); the target is one of the row's behaviours half the time, and
    a click is likelier when the target is in the history (P = sigmoid(+-2))."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, LENGTH + 1, (rows,), generator=g)
    history = torch.randint(2, ITEMS, (rows, LENGTH), generator=g)
    if chained:
        for t in range(1, LENGTH):
            follows = torch.rand(rows, generator=g) < 0.9
            successor = (history[:, t - 1] * 7 + 3) % (ITEMS - 2) + 2
            history[:, t] = torch.where(follows, successor, history[:, t])
    history[torch.arange(LENGTH) >= lengths[:, None]] = 0
    behaviour = history.gather(1, torch.randint(0, LENGTH, (rows, 1), generator=g)).squeeze(1)
    other = torch.randint(2, ITEMS, (rows,), generator=g)
    item = torch.where((torch.rand(rows, generator=g) < 0.5) & (behaviour > 0), behaviour, other)
    seen = (history == item[:, None]).any(1).float()
    label = torch.bernoulli(torch.sigmoid(4 * seen - 2), generator=g)
    categorical = torch.stack([torch.randint(1, 30, (rows,), generator=g), item,
                               category_of(item), torch.randint(1, 6, (rows,), generator=g)], 1)
    return Batch(categorical, torch.randn(rows, 1, generator=g),
                 (history, category_of(history)), label)


def with_history(batch: Batch, history: torch.Tensor) -> Batch:
    return Batch(batch.categorical, batch.numeric, (history, category_of(history)), batch.label)


def train(model: CTRModel, steps: int, chained: bool = False) -> CTRModel:
    """Adam at 1e-2 on fresh batches of 256, BCE plus the model's extra loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        batch = make_batch(256, step, chained)
        out = model(batch)
        loss = F.binary_cross_entropy_with_logits(out.logit, batch.label)
        if out.extra_loss is not None:
            loss = loss + out.extra_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


# --- layers --------------------------------------------------------------------------------


def test_masked_softmax_hand_computed_and_empty_rows_get_zeros() -> None:
    scores = torch.tensor([[1.0, 2.0, 50.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    e1, e2 = math.exp(1.0), math.exp(2.0)
    assert weights[0].tolist() == pytest.approx([e1 / (e1 + e2), e2 / (e1 + e2), 0.0])
    assert weights[1].tolist() == [0.0, 0.0, 0.0]


def test_dice_hand_computed() -> None:
    dice = Dice(1)
    with torch.no_grad():
        dice.alpha.fill_(0.5)
    x = torch.tensor([[1.0], [3.0]])  # batch mean 2, biased variance 1 -> standardised -1, 1
    p = torch.sigmoid(torch.tensor([[-1.0], [1.0]]))
    torch.testing.assert_close(dice(x), x * (p + 0.5 * (1 - p)))
    dice.eval()  # running statistics: mean 0.01 * 2, variance 0.99 + 0.01 * 2 (unbiased)
    p = torch.sigmoid((x - 0.02) / math.sqrt(0.99 + 0.02))
    torch.testing.assert_close(dice(x), x * (p + 0.5 * (1 - p)))


def test_gru_is_torch_gru_with_the_update_gate_read_the_other_way() -> None:
    """``nn.GRU``: ``h' = (1 - z) n + z h`` with gates (r, z, n); ours ``h' = h + u (n - h)``
    with gates (u, r, n), so ``u = 1 - z``: the update rows are ``nn.GRU``'s z rows negated."""
    torch.manual_seed(0)
    reference = torch.nn.GRU(3, 4, batch_first=True)
    gru = AttentionalGRU(3, 4)

    def ours(weight: torch.Tensor) -> torch.Tensor:
        reset, update, new = weight.chunk(3)
        return torch.cat([-update, reset, new])

    with torch.no_grad():
        gru.input_gates.weight.copy_(ours(reference.weight_ih_l0))
        gru.input_gates.bias.copy_(ours(reference.bias_ih_l0))
        gru.state_gates.weight.copy_(ours(reference.weight_hh_l0))
        gru.state_gates.bias.copy_(ours(reference.bias_hh_l0))
    x = torch.randn(5, 6, 3)
    torch.testing.assert_close(gru(x), reference(x)[0])
    torch.testing.assert_close(gru(x, torch.ones(5, 6)), gru(x))  # AUGRU with a = 1 is a GRU


def test_augru_state_stays_where_attention_is_zero() -> None:
    torch.manual_seed(0)
    gru = AttentionalGRU(3, 4)
    x = torch.randn(2, 5, 3)
    attention = torch.tensor([[0.5, 0.2, 0.3, 0.0, 0.0], [0.0] * 5])
    states = gru(x, attention)
    torch.testing.assert_close(states[0, 2:], states[0, 2].expand(3, 4), rtol=0, atol=0)
    assert not states[1].any()  # an empty history keeps h_0 = 0


def test_gru_uniform_init_is_torch_grus() -> None:
    torch.manual_seed(0)
    gru = AttentionalGRU(3, 16, uniform_init=True)
    gru.init_weights()
    bound = 16 ** -0.5
    for p in gru.parameters():
        assert p.abs().max() <= bound and p.abs().max() > 0.8 * bound


def test_target_attention_is_the_unnormalised_weighted_sum_of_real_behaviours() -> None:
    torch.manual_seed(0)
    attention = TargetAttention(2, [3], activation="relu")
    query = torch.randn(2, 2)
    keys = torch.randn(2, 4, 2)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    expected = torch.zeros(2, 2)
    for b in range(2):
        for pos in range(4):
            q, k = query[b], keys[b, pos]
            w = attention.mlp.score(attention.mlp.first(torch.cat([q, k, q - k, q * k]))[None])
            expected[b] += float(mask[b, pos]) * w * k
    torch.testing.assert_close(attention(query, keys, mask), expected)


def test_target_attention_first_layer_by_parts_is_the_layer_on_the_concatenation() -> None:
    """With Dice (batch statistics over all positions, as FuxiCTR's) and softmax."""
    torch.manual_seed(0)
    attention = TargetAttention(3, [5, 4], activation="dice", softmax=True)
    query, keys = torch.randn(6, 3), torch.randn(6, 7, 3)
    mask = torch.rand(6, 7) < 0.7
    q = query.unsqueeze(1).expand_as(keys)
    scores = attention.mlp.score(attention.mlp.first(torch.cat([q, keys, q - keys, q * keys], -1)))
    torch.testing.assert_close(attention.weights(query, keys, mask),
                               masked_softmax(scores, mask))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        TargetAttention(3, [])


def test_bilinear_attention_starts_as_the_dot_product() -> None:
    attention = BilinearAttention(2)
    query = torch.tensor([[1.0, 2.0]])
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    weights = attention(query, keys, torch.tensor([[True, True, False]]))
    e1, e2 = math.exp(1.0), math.exp(2.0)
    assert weights[0].tolist() == pytest.approx([e1 / (e1 + e2), e2 / (e1 + e2), 0.0])


# --- the training step's fast paths against the previous implementation --------------------


def previous_gru_states(gru: AttentionalGRU, inputs: torch.Tensor,
                        attention: torch.Tensor | None = None) -> torch.Tensor:
    """The GRU as it was before packing: every position of every row, padding included."""
    steps = gru.input_gates(inputs).unbind(1)
    h = inputs.new_zeros(inputs.shape[0], gru.hidden_dim)
    states = []
    for t, x_gates in enumerate(steps):
        x_update, x_reset, x_new = x_gates.chunk(3, dim=-1)
        h_update, h_reset, h_new = gru.state_gates(h).chunk(3, dim=-1)
        update = torch.sigmoid(x_update + h_update)
        if attention is not None:
            update = attention[:, t, None] * update
        reset = torch.sigmoid(x_reset + h_reset)
        h = h + update * (torch.tanh(x_new + reset * h_new) - h)
        states.append(h)
    return torch.stack(states, dim=1)


def previous_attention_weights(attention: TargetAttention, query: torch.Tensor,
                               keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DIN's weights as they were: the first layer on ``[k, q * k]`` concatenated."""
    w_q, w_k, w_d, w_p = attention.mlp.blocks(*[attention.dim] * 4)
    per_row = F.linear(query, w_q + w_d, attention.mlp.first.bias)
    per_position = F.linear(torch.cat([keys, query.unsqueeze(1) * keys], dim=-1),
                            torch.cat([w_k - w_d, w_p], dim=1))
    scores = attention.mlp.score(per_row.unsqueeze(1) + per_position)
    return masked_softmax(scores, mask) if attention.softmax else scores * mask


def gradients(output: torch.Tensor, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    weights = torch.linspace(-1, 1, output.numel()).view_as(output)
    return torch.autograd.grad((output * weights).sum(), tensors, retain_graph=True,
                               allow_unused=True, materialize_grads=True)


def assert_close_1e6(actual: object, expected: object) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def gru_and_ragged_histories() -> tuple[AttentionalGRU, torch.Tensor, torch.Tensor,
                                        torch.Tensor, torch.Tensor]:
    """A GRU and 9 right-padded rows of every length 0 to 7, unsorted: ``(gru, lengths, mask,
    inputs, attention)``, attention zero at padding; inputs and attention require grad."""
    torch.manual_seed(0)
    gru = AttentionalGRU(5, 4)
    lengths = torch.tensor([7, 3, 0, 5, 1, 7, 2, 0, 4])
    mask = torch.arange(7) < lengths[:, None]
    inputs = torch.randn(9, 7, 5, requires_grad=True)
    attention = (torch.rand(9, 7) * mask).requires_grad_()
    return gru, lengths, mask, inputs, attention


def test_packed_gru_equals_the_previous_gru_at_real_positions() -> None:
    """Rows of every length (0 to L, unsorted): the states at real positions, the final state
    (the AUGRU's with zero attention at padding: the previous ``states[:, -1]``) and every
    gradient at real positions equal the unpacked GRU's; states after a row's end are 0."""
    gru, lengths, mask, inputs, attention = gru_and_ragged_histories()
    real = mask.unsqueeze(-1)
    tensors = [inputs, attention, *gru.parameters()]

    states = gru(inputs, mask=mask)
    expected = previous_gru_states(gru, inputs)
    assert_close_1e6(states * real, expected * real)
    assert not states[~mask].any()
    assert_close_1e6(gradients(states * real, tensors), gradients(expected * real, tensors))

    final = gru.final_state(inputs, attention, mask)
    expected = previous_gru_states(gru, inputs, attention)[:, -1]
    assert_close_1e6(final, expected)
    assert not final[lengths == 0].any()
    ours, previous = gradients(final, tensors), gradients(expected, tensors)
    assert_close_1e6(ours[1] * mask, previous[1] * mask)  # d/da at padding is not used
    assert_close_1e6([ours[0], *ours[2:]], [previous[0], *previous[2:]])
    # without a mask every position is real: the plain GRU's states
    assert_close_1e6(gru(inputs, attention), previous_gru_states(gru, inputs, attention))


def test_a_traced_gru_steps_every_position_to_the_packed_grus_states() -> None:
    """Exported (or traced), the GRU cannot loop over the rows still going (data-dependent counts
    would be fixed to the example's): it steps all positions, keeping a row's state over its
    padding. States, final states and gradients equal the packed run's (to 1e-6: the products
    run on other row counts), at a batch other than the traced one."""
    gru, _, mask, inputs, attention = gru_and_ragged_histories()
    tensors = [inputs, attention, *gru.parameters()]
    for packed, stepped in ((gru(inputs, None, mask), gru._masked_run(inputs, None, mask)[0]),
                            (gru.final_state(inputs, attention, mask),
                             gru._masked_run(inputs, attention, mask)[1])):
        assert_close_1e6(packed, stepped)
        assert_close_1e6(gradients(packed, tensors), gradients(stepped, tensors))

    class Final(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = gru

        def forward(self, x: torch.Tensor, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            return self.gru.final_state(x, a, m)

    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(
            Final(), (inputs[:2].detach(), attention[:2].detach(), mask[:2]),
            dynamic_shapes=({0: batch}, {0: batch}, {0: batch}))
        assert_close_1e6(program.module()(inputs, attention, mask),
                         gru.final_state(inputs, attention, mask))


@pytest.mark.parametrize("softmax", [False, True])
def test_target_attention_per_row_kernels_equal_the_previous_concatenation(
    softmax: bool,
) -> None:
    torch.manual_seed(0)
    attention = TargetAttention(6, [8, 4], activation="dice", softmax=softmax)
    query = torch.randn(10, 6, requires_grad=True)
    keys = torch.randn(10, 9, 6, requires_grad=True)
    mask = torch.rand(10, 9) < 0.7
    tensors = [query, keys, *attention.parameters()]
    weights = attention.weights(query, keys, mask)
    expected = previous_attention_weights(attention, query, keys, mask)
    assert_close_1e6(weights, expected)
    assert_close_1e6(gradients(weights, tensors), gradients(expected, tensors))
    pooled = attention(query, keys, mask)
    expected = (expected.unsqueeze(-1) * keys).sum(1)
    assert_close_1e6(pooled, expected)
    assert_close_1e6(gradients(pooled, tensors), gradients(expected, tensors))


def with_previous_layers(model: CTRModel) -> CTRModel:
    """``model`` computing with the previous implementations (the same parameters)."""
    if model.name == "din":
        attention = model.attention
        attention.weights = lambda q, k, m: previous_attention_weights(attention, q, k, m)
    else:
        extractor, evolution = model.extractor, model.evolution
        extractor.forward = lambda x, a=None, mask=None: previous_gru_states(extractor, x, a)
        evolution.final_state = lambda x, a, mask: previous_gru_states(evolution, x, a)[:, -1]
    return model


@pytest.mark.parametrize("name", MODELS)
def test_training_step_outputs_and_gradients_equal_the_previous_implementation(
    name: str,
) -> None:
    """A fixed batch with empty, short and full histories in training mode (Dice and batch
    norm on batch statistics, DIEN's auxiliary loss): the logits, the loss and every
    parameter's gradient equal the previous implementation's to 1e-6."""
    torch.manual_seed(0)
    model = build_model(name, FEATURES, SMALL)
    previous = with_previous_layers(build_model(name, FEATURES, SMALL))
    previous.load_state_dict(model.state_dict())
    batch = make_batch(64, 3)
    results = []
    for m in (model, previous):
        out = m(batch)
        loss = F.binary_cross_entropy_with_logits(out.logit, batch.label)
        if out.extra_loss is not None:
            loss = loss + out.extra_loss
        results.append([out.logit, loss, *torch.autograd.grad(loss, list(m.parameters()))])
    assert (batch.sequences[0] > 0).sum(1).unique().numel() == LENGTH + 1  # every length
    assert_close_1e6(results[0], results[1])


# --- pairing and the models' structure -----------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_histories_pair_with_their_targets(name: str) -> None:
    model = build_model(name, FEATURES, SMALL)
    pairs = model.pairs
    assert pairs.sequences == (0, 1)
    # fields: user, item, category, hour, hist_item, hist_category, price
    assert pairs.target_fields == (1, 2) and pairs.history_fields == (4, 5)
    assert pairs.other_fields == (0, 1, 2, 3, 6)


def test_paired_histories_of_different_lengths_are_refused() -> None:
    features = FeatureMap((
        *FEATURES.features[:4],
        Feature("hist_item", "sequence", ITEMS, max_len=LENGTH, share_with="item"),
        Feature("hist_category", "sequence", CATEGORIES, max_len=3, share_with="category"),
    ))
    with pytest.raises(ConfigError, match="one length"):
        build_model("din", features, SMALL)


@pytest.mark.parametrize("name", MODELS)
def test_without_a_paired_history_the_model_is_its_mlp(name: str) -> None:
    features = FeatureMap((
        *FEATURES.features[:4],
        Feature("genres", "sequence", vocab_size=9, max_len=3),  # no target: a pooled field
    ))
    model = build_model(name, features, SMALL)
    assert len(model.pairs) == 0
    modules = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert modules == {"embedding", "mlp", "head"}


# --- behaviour -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes_and_the_extra_loss_only_in_training(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, FEATURES, SMALL)
    out = model(make_batch(7, 0))
    assert out.logit.shape == (7,) and out.h.shape == (7, 16)
    assert (out.extra_loss is not None) == (name == "dien")
    if name == "dien":
        assert out.extra_loss.shape == ()
    assert model.eval()(make_batch(7, 0)).extra_loss is None


@pytest.mark.parametrize("name", MODELS)
def test_padding_positions_change_nothing(name: str) -> None:
    """Whatever sits at the padded positions of the behaviour rows (training mode, so Dice's
    and batch norm's statistics would show it too)."""
    torch.manual_seed(0)
    model = build_model(name, FEATURES, SMALL)
    batch = make_batch(64, 1)
    embedded = model.embedding.embed(batch)
    noise = [torch.where(m.unsqueeze(-1), s, 100 * torch.randn_like(s))
             for s, m in zip(embedded.sequences, embedded.masks, strict=True)]
    noisy = Embedded(embedded.fields, tuple(noise), embedded.masks)
    torch.manual_seed(1)
    out = model.forward_embedded(batch, embedded)
    torch.manual_seed(1)
    out_noisy = model.forward_embedded(batch, noisy)
    torch.testing.assert_close(out_noisy.logit, out.logit)
    if name == "dien":
        torch.testing.assert_close(out_noisy.extra_loss, out.extra_loss)


@pytest.mark.parametrize("name", MODELS)
def test_empty_histories_give_finite_outputs_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, FEATURES, SMALL)
    batch = make_batch(16, 2)
    empty = torch.zeros_like(batch.sequences[0])
    for history in (empty, torch.cat([empty[:8], batch.sequences[0][8:]])):
        out = model(with_history(batch, history))
        loss = out.logit.sum() + (out.extra_loss if out.extra_loss is not None else 0)
        model.zero_grad()
        loss.backward()
        assert torch.isfinite(out.logit).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_dien_evolved_interest_of_an_empty_history_is_zero() -> None:
    torch.manual_seed(0)
    model = build_model("dien", FEATURES, SMALL).eval()
    batch = with_history(make_batch(4, 3), torch.zeros(4, LENGTH, dtype=torch.long))
    embedded = model.embedding.embed(batch)
    keys, mask = model.pairs.keys(embedded)
    interests = model.extractor(keys)
    weights = model.attention(model.pairs.query(embedded.fields), interests, mask)
    assert not weights.any() and not model.evolution(interests, weights)[:, -1].any()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient_from_the_training_loss(name: str) -> None:
    """DDP refuses a parameter without a gradient; DIEN's auxiliary network has one through
    the extra loss only."""
    model = build_model(name, FEATURES, SMALL)
    out = model(make_batch(32, 4))
    loss = out.logit.sum() + (out.extra_loss if out.extra_loss is not None else 0)
    loss.backward()
    assert [k for k, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", MODELS)
def test_vmap_over_stacked_models_with_histories_matches_each_model(name: str) -> None:
    models = [build_model(name, FEATURES, SMALL).eval() for _ in range(3)]
    params, buffers = stack_module_state(models)
    batch = make_batch(6, 5)

    def run(p: dict, b: dict) -> torch.Tensor:
        return functional_call(models[0], (p, b), (batch,)).logit

    expected = torch.stack([m(batch).logit for m in models])
    torch.testing.assert_close(torch.vmap(run)(params, buffers), expected)


@pytest.mark.parametrize("name", MODELS)
def test_a_batched_group_trains_as_its_members_would(name: str) -> None:
    """Training mode (batch statistics) and backward under ``vmap``: the logits, and the
    weights after a step, equal the separate models'."""
    torch.manual_seed(0)
    models = [build_model(name, FEATURES, SMALL) for _ in range(2)]
    group = BatchedModelGroup(models, ["a", "b"])
    batch = make_batch(32, 7)

    def sgd_step(parameters: list[torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        logits.sum().backward()
        torch.optim.SGD(parameters, lr=0.01).step()
        return logits.detach()

    grouped = sgd_step(list(group.parameters()), torch.stack([o.logit for o in group(batch)]))
    separate = sgd_step([p for m in models for p in m.parameters()],
                        torch.stack([m(batch).logit for m in models]))
    torch.testing.assert_close(grouped, separate)
    for i, model in enumerate(models):
        after = group.member_state_dict(i)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(after[key], value, msg=key)


def test_din_learns_the_target_history_match_that_a_pooled_dnn_misses() -> None:
    torch.manual_seed(0)
    din = train(build_model("din", FEATURES, SMALL), steps=150)
    torch.manual_seed(0)
    dnn = train(build_model("dnn", FEATURES, SMALL), steps=150)
    test = make_batch(4096, 10**6)
    with torch.no_grad():
        din_auc = auc(test.label.numpy(), torch.sigmoid(din(test).logit).numpy())
        dnn_auc = auc(test.label.numpy(), torch.sigmoid(dnn(test).logit).numpy())
        # the same rows with the target put into / kept out of the history
        history = test.sequences[0].clone()
        history[:, 0] = test.categorical[:, 1]
        inside = torch.sigmoid(din(with_history(test, history)).logit)
        history[:, 0] = 1  # an out-of-vocabulary behaviour, never a target
        history[history == test.categorical[:, 1:2]] = 1
        outside = torch.sigmoid(din(with_history(test, history)).logit)
    assert din_auc > 0.82 and din_auc > dnn_auc + 0.08, (din_auc, dnn_auc)  # Bayes AUC 0.85
    assert (inside - outside).mean() > 0.4


def test_dien_auxiliary_loss_is_lower_for_true_next_behaviours_than_for_shuffled_ones() -> None:
    torch.manual_seed(0)
    model = train(build_model("dien", FEATURES, {"embedding_dim": 8, "hidden_units": [16],
                                                 "aux_hidden_units": [16]}),
                  steps=200, chained=True)
    batch = make_batch(2048, 999, chained=True)
    # each row's real behaviours in a random order, padding kept at the end
    g = torch.Generator().manual_seed(5)
    order = torch.argsort(torch.rand(2048, LENGTH, generator=g)
                          + 2 * (batch.sequences[0] == 0), dim=1)
    shuffled = with_history(batch, batch.sequences[0].gather(1, order))

    def next_behaviour_loss(b: Batch) -> float:
        keys, mask = model.pairs.keys(model.embedding.embed(b))
        with torch.no_grad():
            return model.next_behaviour(model.extractor(keys), keys, mask).item()

    true, wrong = next_behaviour_loss(batch), next_behaviour_loss(shuffled)
    assert true < 0.6 * wrong, (true, wrong)


# --- the auxiliary loss in the objectives --------------------------------------------------


def test_dien_extra_loss_is_alpha_times_the_next_behaviour_loss() -> None:
    torch.manual_seed(0)
    model = build_model("dien", FEATURES, {**SMALL, "aux_loss_alpha": 0.25})
    batch = make_batch(32, 6)
    torch.manual_seed(1)
    out = model(batch)
    embedded = model.embedding.embed(batch)
    keys, mask = model.pairs.keys(embedded)
    expected = 0.25 * model.next_behaviour(model.extractor(keys), keys, mask)
    torch.testing.assert_close(out.extra_loss, expected)
    off = build_model("dien", FEATURES, {**SMALL, "aux_loss_alpha": 0})
    assert off.next_behaviour is None and off(batch).extra_loss is None


def test_next_behaviour_loss_hand_computed() -> None:
    """Row 1's negative is row 0's behaviour at the same position; a position counts when the
    next behaviour and its negative are both real."""
    torch.manual_seed(0)
    model = build_model("dien", FEATURES, SMALL)
    loss = model.next_behaviour
    interests = torch.randn(2, 3, 16)
    behaviours = torch.randn(2, 3, 16)
    mask = torch.tensor([[True, True, False], [True, True, True]])

    def logit(interest: torch.Tensor, behaviour: torch.Tensor) -> torch.Tensor:
        return loss.mlp.score(loss.mlp.first(torch.cat([interest, behaviour]))[None])

    terms = []
    for b, t in [(0, 0), (1, 0)]:  # (1, 1): row 0's position 2 is padding
        negative = behaviours[(b - 1) % 2, t + 1]
        pos = logit(interests[b, t], behaviours[b, t + 1])
        neg = logit(interests[b, t], negative)
        terms.append(-F.logsigmoid(pos) - F.logsigmoid(-neg))
    torch.testing.assert_close(loss(interests, behaviours, mask), torch.cat(terms).mean())


class FixedOutputs(torch.nn.Module):
    """A group that returns the outputs it was given, to test the step's loss by hand."""

    def __init__(self, outputs: list[ModelOutput]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, batch: Batch) -> list[ModelOutput]:
        return self.outputs


def _step_objectives(names: list[str]) -> list:
    return [IndependentObjective(names), MutualObjective(names, weight=0.5),
            EKTFObjective(names), CETNetObjective(names, [1, 1], alpha=0.1),
            OnlineKD(names, temperature=2.0, alpha=0.5)]


@pytest.mark.parametrize("index", range(5))
def test_every_method_adds_dien_s_extra_loss_once(index: int) -> None:
    label = torch.tensor([1.0, 0.0])
    plain = ModelOutput(logit=torch.tensor([0.5, -1.0]), h=torch.zeros(2, 1))
    dien = ModelOutput(logit=torch.tensor([2.0, 0.0]), h=torch.zeros(2, 1),
                       extra_loss=torch.tensor(0.3))
    batch = Batch(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0), (), label)
    objective = _step_objectives(["a", "b"])[index]
    step = _Step(FixedOutputs([plain, dien]), objective, torch.float32)
    loss, parts, _ = step(batch)
    method_loss = objective([plain, dien], batch).loss
    assert loss.item() == pytest.approx(method_loss.item() + 0.3)
    assert parts["extra/b"].item() == pytest.approx(0.3) and "extra/a" not in parts
    assert auxiliary_loss(dien, label, torch.tensor(0.5)) is None  # no sub-network loss


@pytest.mark.parametrize("index", range(5))
def test_dien_s_auxiliary_network_trains_under_every_method(index: int) -> None:
    """Without its next-behaviour loss DIEN's auxiliary network gets no gradient, and DDP
    refuses a parameter that gets none."""
    from training_support import SEQUENCE_FEATURE_MAP, sequence_split

    torch.manual_seed(0)
    models = [build_model(name, SEQUENCE_FEATURE_MAP, {"embedding_dim": 8})
              for name in ("din", "dien")]
    split = sequence_split(64, seed=2)
    batch = Batch(torch.from_numpy(split.categorical).long(), torch.from_numpy(split.numeric),
                  tuple(torch.from_numpy(s).long() for s in split.sequences),
                  torch.from_numpy(split.label))
    names = ["din", "dien"]
    objective = _step_objectives(names)[index]
    if isinstance(objective, CETNetObjective):
        objective = CETNetObjective(names, [m.representation_dim for m in models], alpha=0.1)
    loss, _, _ = _Step(ModelGroup(models, names).train(), objective, torch.float32)(batch)
    loss.backward()
    auxiliary = models[1].next_behaviour
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in auxiliary.parameters())


def test_a_batched_group_of_diens_keeps_each_members_auxiliary_loss() -> None:
    from mutualctr.training.groups.batched import BatchedModelGroup
    from training_support import SEQUENCE_FEATURE_MAP, sequence_split

    torch.manual_seed(0)
    models = [build_model("dien", SEQUENCE_FEATURE_MAP, {"embedding_dim": 8}) for _ in range(2)]
    split = sequence_split(64, seed=2)
    batch = Batch(torch.from_numpy(split.categorical).long(), torch.from_numpy(split.numeric),
                  tuple(torch.from_numpy(s).long() for s in split.sequences),
                  torch.from_numpy(split.label))
    group = BatchedModelGroup(models, ["a", "b"]).train()
    outputs = group(batch)
    assert all(o.extra_loss is not None and o.extra_loss.ndim == 0 for o in outputs)
    assert all(torch.isfinite(o.extra_loss) for o in outputs)
