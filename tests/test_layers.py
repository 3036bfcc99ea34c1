"""Layers against hand-computed values or naive loop implementations of the papers' equations."""

from __future__ import annotations

import itertools

import pytest
import torch

from mutualctr.models.layers import (
    CIN,
    MLP,
    BilinearFusion,
    BilinearInteraction,
    CrossNetwork,
    CrossNetworkV2,
    CrossNetworkV3,
    FeatureGate,
    FieldSelfAttention,
    FinalBlock,
    InnerProduct,
    SENet,
    fm_interaction,
    split_heads,
    sum_outer_product,
)
from mutualctr.models.layers.cross import LowRankCross
from mutualctr.models.layers.final import FactorizedInteraction, FieldGate
from mutualctr.models.layers.pairs import num_pairs

torch.manual_seed(0)


pytestmark = pytest.mark.usefixtures("one_thread")


def pairs(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def test_fm_hand_computed() -> None:
    emb = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]]])
    # pairs: (1*3 + 2*-1) + (1*.5 + 0) + (3*.5 + 0) = 1 + 0.5 + 1.5
    assert fm_interaction(emb).sum().item() == pytest.approx(3.0)
    # per dimension: 1*3 + 1*.5 + 3*.5 and 2*-1 + 0 + 0
    assert fm_interaction(emb)[0].tolist() == pytest.approx([5.0, -2.0])


def test_fm_matches_explicit_pair_sum() -> None:
    emb = torch.randn(5, 7, 4, dtype=torch.float64)
    explicit = sum(emb[:, i] * emb[:, j] for i, j in pairs(7))
    torch.testing.assert_close(fm_interaction(emb), explicit)


def test_inner_products_in_pair_order() -> None:
    emb = torch.randn(3, 6, 5, dtype=torch.float64)
    explicit = torch.stack([(emb[:, i] * emb[:, j]).sum(-1) for i, j in pairs(6)], dim=1)
    torch.testing.assert_close(InnerProduct(6)(emb), explicit)
    hand = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]]])
    assert InnerProduct(3)(hand).tolist() == [[11.0, 0.0, -1.0]]


def test_sum_outer_product() -> None:
    emb = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])  # sum = [4, 1]
    assert sum_outer_product(emb).tolist() == [[16.0, 4.0, 4.0, 1.0]]


def test_dcn_cross_layer_hand_computed() -> None:
    net = CrossNetwork(2, 1)
    with torch.no_grad():
        net.weights[0].copy_(torch.tensor([0.5, -1.0]))
        net.biases[0].copy_(torch.tensor([0.1, 0.2]))
    x0 = torch.tensor([[1.0, 2.0]])  # x0 . w = -1.5
    assert net(x0).tolist() == [pytest.approx([-1.5 + 0.1 + 1.0, -3.0 + 0.2 + 2.0])]


def test_dcn_cross_closed_form_equals_layer_recursion() -> None:
    """The closed form ``x_0 t_L + beta_L`` against Eq. 3 applied row by row, layer by layer,
    with non-zero biases so the ``c_l = beta_l^T w_l`` terms matter; gradients too."""
    torch.manual_seed(0)
    net = CrossNetwork(4, 3).double()
    with torch.no_grad():
        for b in net.biases:
            b.normal_()
    x0 = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    x = x0
    for w, b in zip(net.weights, net.biases, strict=True):
        x = torch.stack([x0[r] * (x[r] @ w) + b + x[r] for r in range(3)])
    closed = net(x0)
    torch.testing.assert_close(closed, x)
    weight = torch.randn_like(x)
    expected = torch.autograd.grad((x * weight).sum(), [x0, *net.parameters()])
    got = torch.autograd.grad((closed * weight).sum(), [x0, *net.parameters()])
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)


def test_dcnv2_full_rank_hand_computed() -> None:
    net = CrossNetworkV2(2, 1)
    with torch.no_grad():
        net.layers[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        net.layers[0].linear.bias.copy_(torch.tensor([0.5, -1.0]))
    x0 = torch.tensor([[2.0, 3.0]])  # W x0 + b = [2.5, 4]
    assert net(x0).tolist() == [[2.0 * 2.5 + 2.0, 3.0 * 4.0 + 3.0]]


def test_dcnv2_low_rank_equals_full_rank_with_product_matrix() -> None:
    low = LowRankCross(6, 2, 1).double()
    x0, x = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    weight = (low.V[0] @ low.U[0]).T  # W = U V^T in the paper's column convention
    torch.testing.assert_close(low(x0, x), x0 * (x @ weight.T + low.bias))


def test_dcnv2_mixture_of_experts_matches_loop() -> None:
    layer = LowRankCross(5, 3, 4).double()
    x0, x = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    gate = torch.softmax(x @ layer.gate.weight.T, dim=-1)
    expected = torch.zeros_like(x)
    for e in range(4):
        inner = torch.tanh(torch.tanh(x @ layer.V[e]) @ layer.C[e])
        expected = expected + gate[:, e : e + 1] * x0 * (inner @ layer.U[e] + layer.bias)
    torch.testing.assert_close(layer(x0, x), expected)


def test_senet_hand_computed() -> None:
    senet = SENet(2, reduction_ratio=1.0)
    with torch.no_grad():
        senet.excitation[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        senet.excitation[2].weight.copy_(torch.tensor([[0.0, 2.0], [1.0, -1.0]]))
    emb = torch.tensor([[[1.0, 3.0], [4.0, 0.0]]])  # z = [2, 2] -> relu -> a = relu([4, 0])
    assert senet(emb).tolist() == [[[4.0, 12.0], [0.0, 0.0]]]


@pytest.mark.parametrize("kind", ["field_all", "field_each", "field_interaction"])
@pytest.mark.parametrize("shared", [False, True])
def test_bilinear_matches_loop(kind: str, shared: bool) -> None:
    """Outputs and gradients (the hand-written backward) against Eq. 5-7 pair by pair; the
    no-gradient path (evaluation, export) gives the same outputs."""
    layer = BilinearInteraction(4, 3, kind, groups=2, shared=shared).double()
    emb = torch.randn(2, 8, 3, dtype=torch.float64, requires_grad=True)  # two groups of 4
    outputs = []
    for g in range(2):
        weights = layer.weight[0 if shared else g]
        for p, (i, j) in enumerate(pairs(4)):
            w = {"field_all": 0, "field_each": i, "field_interaction": p}[kind]
            outputs.append((emb[:, 4 * g + i] @ weights[w]) * emb[:, 4 * g + j])
    expected = torch.stack(outputs, dim=1)
    got = layer(emb)
    torch.testing.assert_close(got, expected)
    assert layer.weight.shape[0] == (1 if shared else 2)
    upstream = torch.randn_like(expected)
    grads = [torch.autograd.grad((out * upstream).sum(), [emb, layer.weight])
             for out in (got, expected)]
    for g, e in zip(*grads, strict=True):
        torch.testing.assert_close(g, e)
    with torch.no_grad():
        torch.testing.assert_close(layer(emb), expected)


def test_bilinear_under_vmap_equals_members() -> None:
    """A batched group stacks members' weights and runs the layer under ``vmap``: outputs and
    gradients equal each member's own."""
    layers = [BilinearInteraction(3, 2, "field_interaction", groups=2).double() for _ in range(3)]
    params, _ = torch.func.stack_module_state(layers)
    emb = torch.randn(4, 6, 2, dtype=torch.float64)

    def run(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(layers[0], state, (emb,))

    stacked = torch.vmap(run)(params)
    upstream = torch.randn_like(stacked)
    (stacked * upstream).sum().backward()
    for m, layer in enumerate(layers):
        out = layer(emb)
        torch.testing.assert_close(stacked[m], out)
        (out * upstream[m]).sum().backward()
        torch.testing.assert_close(params["weight"].grad[m], layer.weight.grad)


def test_bilinear_hand_computed() -> None:
    layer = BilinearInteraction(2, 2, "field_all")
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]]))  # swaps coordinates
    emb = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    assert layer(emb).tolist() == [[[2.0 * 3.0, 1.0 * 5.0]]]


@pytest.mark.parametrize("kind", ["field_all", "field_each", "field_interaction"])
def test_bilinear_init_per_group_as_one_layer(kind: str) -> None:
    """Each group is initialised as one FuxiCTR ``BilinearInteractionV2`` of the same kind:
    Xavier normal with the fans of its own shape ([D, D] or [count, D, D]), so stacking the
    two FiBiNET layers into one parameter does not change their scale."""
    fields, dim = 12, 32
    count = {"field_all": 1, "field_each": fields, "field_interaction": num_pairs(fields)}
    fan_in, fan_out = (dim, dim) if kind == "field_all" else (dim * dim, count[kind] * dim)
    expected = (2.0 / (fan_in + fan_out)) ** 0.5
    torch.manual_seed(0)
    layer = BilinearInteraction(fields, dim, kind, groups=2)
    for group_weight in layer.weight:
        assert group_weight.std().item() == pytest.approx(expected, rel=0.1)


def test_cin_matches_paper_equation() -> None:
    cin = CIN(3, [2, 4]).double()
    x0 = torch.randn(2, 3, 5, dtype=torch.float64)
    x, pooled = x0, []
    for layer in cin.layers:
        w = layer.weight.view(layer.out_features, x.shape[1], 3)
        nxt = torch.zeros(2, layer.out_features, 5, dtype=torch.float64)
        for h in range(layer.out_features):
            nxt[:, h] = layer.bias[h]
            for i in range(x.shape[1]):
                for j in range(3):
                    nxt[:, h] = nxt[:, h] + w[h, i, j] * x[:, i] * x0[:, j]
        x = nxt
        pooled.append(x.sum(-1))
    torch.testing.assert_close(cin(x0), torch.cat(pooled, dim=1))
    assert cin.out_dim == 6


@pytest.mark.parametrize("residual,scale", [(True, False), (False, True)])
def test_self_attention_matches_naive(residual: bool, scale: bool) -> None:
    layer = FieldSelfAttention(4, 3, 2, residual=residual, scale=scale).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    wq, wk, wv = layer.qkv.weight.view(3, 2, 3, 4).unbind(0)  # [heads, head_dim, in]
    out = torch.zeros(2, 5, 6, dtype=torch.float64)
    for b, h, m in itertools.product(range(2), range(2), range(5)):
        q = wq[h] @ x[b, m]
        logits = torch.stack([q @ (wk[h] @ x[b, k]) for k in range(5)])
        alpha = torch.softmax(logits / (3**0.5 if scale else 1.0), dim=0)
        out[b, m, h * 3 : (h + 1) * 3] = sum(alpha[k] * (wv[h] @ x[b, k]) for k in range(5))
    if residual:
        out = out + x @ layer.residual.weight.T
    torch.testing.assert_close(layer(x), torch.relu(out))


def test_exponential_and_linear_cross_hand_computed() -> None:
    lcn = CrossNetworkV3(2, 2, exponential=False, layer_norm=False)
    ecn = CrossNetworkV3(2, 2, exponential=True, layer_norm=False)
    for net in (lcn, ecn):
        with torch.no_grad():
            for layer in net.layers:
                layer.linear.weight.copy_(torch.tensor([[1.0, 1.0]]))
                layer.bias.zero_()
    x1 = torch.tensor([[1.0, 2.0]])
    # layer 1 (both): c = 3, mask = c * relu(c) = 9 -> x = x1 * [3, 9] + x1 = [4, 20]
    # LCN layer 2: c = 24, [24, 576] -> x1 * [24, 576] + x = [28, 1172]
    # ECN layer 2: c = 24, [24, 576] -> x * [24, 576] + x = [100, 11540]
    assert lcn(x1).tolist() == [[28.0, 1172.0]]
    assert ecn(x1).tolist() == [[100.0, 11540.0]]


def test_self_mask_uses_layer_norm() -> None:
    net = CrossNetworkV3(4, 1, exponential=True, layer_norm=True).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    layer = net.layers[0]
    c = x @ layer.linear.weight.T
    normed = torch.nn.functional.layer_norm(c, (2,), layer.norm.weight, layer.norm.bias)
    expected = x * (torch.cat([c, c * torch.relu(normed)], dim=-1) + layer.bias) + x
    torch.testing.assert_close(net(x), expected)


def test_split_heads() -> None:
    emb = torch.arange(8.0).view(1, 2, 4)  # fields [0 1 2 3], [4 5 6 7]
    assert split_heads(emb, 2).tolist() == [[[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0]]]


@pytest.mark.parametrize("residual", ["concat", "sum"])
def test_factorized_interaction(residual: str) -> None:
    layer = FactorizedInteraction(2, 2 if residual == "concat" else 1, residual)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        layer.linear.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.tensor([[3.0, 4.0]])  # h = [3, 5] -> h2 = 3, h1 = 5
    expected = [[3.0, 15.0]] if residual == "concat" else [[18.0]]
    assert layer(x).tolist() == expected


def test_final_block_degree_grows_exponentially() -> None:
    """Two stacked FINAL layers with identity activations: a degree-4 polynomial of the input."""
    block = FinalBlock(3, [4, 4], batch_norm=False).double()
    x = torch.randn(1, 3, dtype=torch.float64)
    values = torch.stack([block(t * x) for t in range(6)]).squeeze(1)  # [6, 4]
    scale = values.abs().max()
    assert torch.diff(values, n=4, dim=0).abs().max() > 1e-6 * scale  # not of degree <= 3
    assert torch.diff(values, n=5, dim=0).abs().max() < 1e-9 * scale  # of degree <= 4


def test_field_gate_starts_as_identity_gate() -> None:
    emb = torch.randn(2, 3, 4)
    torch.testing.assert_close(FieldGate(3)(emb), torch.cat([emb, emb], dim=1))


def test_feature_gate_starts_at_one_and_uses_context() -> None:
    emb = torch.randn(2, 3, 4)
    gate = FeatureGate([1], 4, 12, [8])
    torch.testing.assert_close(gate(emb), emb.flatten(1))
    with torch.no_grad():
        gate.out.bias.fill_(1.0)
    torch.testing.assert_close(gate(emb), emb.flatten(1) * 2 * torch.sigmoid(torch.tensor(1.0)))


def test_bilinear_fusion_readout_equals_paper() -> None:
    fusion = BilinearFusion(4, 6, num_heads=2).double()
    o1, o2 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    out = fusion(o1, o2)
    bilinear = sum(
        torch.einsum("bi,ij,bj->b", o1[:, 2 * h : 2 * h + 2], fusion.weight[h],
                     o2[:, 3 * h : 3 * h + 3])
        for h in range(2)
    )
    torch.testing.assert_close(out[:, 10:].sum(1), bilinear)
    torch.testing.assert_close(out[:, :10], torch.cat([o1, o2], dim=1))


def test_mlp_shapes_and_options() -> None:
    mlp = MLP(5, [4, 3], activation="tanh", dropout=0.5, batch_norm=True)
    kinds = [type(m).__name__ for m in mlp.layers]
    assert kinds == ["Linear", "BatchNorm1d", "Tanh", "Dropout"] * 2
    assert mlp.out_dim == 3 and mlp(torch.randn(6, 5)).shape == (6, 3)
    assert MLP(5, []).out_dim == 5
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(5, [2], activation="swishy")
