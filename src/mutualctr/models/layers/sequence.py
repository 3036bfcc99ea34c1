"""Layers of the behaviour-sequence models: DIN's local activation unit and Dice, DIEN's GRU with
an attentional update gate.

Sequences are right-padded ``[B, L, d]`` with a mask ``[B, L]`` (True = a real behaviour); every
layer here is written for ``torch.func.vmap``: masks instead of boolean indexing, shapes that
depend on the mask only (which stacked copies share; the GRU's packed steps), never on the
parameters, and finite results for a row whose history is all padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mutualctr.models.layers.mlp import MLP, make_activation

MASKED_SCORE = -1e9  # a padding position's score before softmax: exp() of it is exactly 0


class Dice(nn.Module):
    """Dice (Zhou et al., KDD 2018, Sec. 5.2): ``f(s) = p(s) s + (1 - p(s)) alpha s`` with
    ``p(s) = sigmoid((s - E[s]) / sqrt(Var[s] + eps))``, the statistics of the mini-batch in
    training and their running averages at inference; ``alpha`` is learned per unit.

    As FuxiCTR's ``Dice``: batch norm without affine parameters, ``eps`` 1e-9, momentum 0.01,
    ``alpha`` starting at 0. Input ``[N, units]``.
    """

    def __init__(self, units: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(units, affine=False, eps=1e-9, momentum=0.01)
        self.alpha = nn.Parameter(torch.zeros(units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.norm(x))
        return x * torch.lerp(self.alpha, torch.ones_like(self.alpha), p)  # alpha + p (1 - alpha)


def unit_activation(name: str, units: int) -> nn.Module:
    """:class:`Dice` of width ``units`` for ``"dice"``, else
    :func:`~mutualctr.models.layers.mlp.make_activation`'s module of that name."""
    return Dice(units) if name == "dice" else make_activation(name)


def activation_mlp(in_dim: int, hidden: Sequence[int], activation: str, dropout: float = 0.0,
                   batch_norm: bool = False) -> MLP:
    """The shared :class:`MLP`, where ``activation="dice"`` gives each layer a :class:`Dice` of
    its own width (``Linear -> [BatchNorm] -> Dice -> [Dropout]``, FuxiCTR's ``MLP_Block``
    order); other names are :func:`~mutualctr.models.layers.mlp.make_activation`'s."""
    if activation != "dice":
        return MLP(in_dim, hidden, activation, dropout, batch_norm)

    def linear_dice(fan_in: int, units: int) -> nn.Module:
        norm = [nn.BatchNorm1d(units)] if batch_norm else []
        return nn.Sequential(nn.Linear(fan_in, units), *norm, unit_activation("dice", units))

    return MLP(in_dim, hidden, "identity", dropout, batch_norm=False, layer=linear_dice)


class ScoringMLP(nn.Module):
    """An MLP with one output, ``Linear(in_dim, units[0]) -> act -> [Dropout] -> MLP(units[1:])
    -> Linear(., 1)``, whose first layer a caller applies itself (:meth:`score`).

    Its input is a concatenation of parts, some shared by many rows (DIN's target against each
    behaviour, DIEN's interest against a behaviour and a negative). ``first(concat(parts))`` is
    the sum of each part times its block of ``first.weight``, so a shared part is multiplied
    once and the concatenation is never built: the same function and parameters (the full
    ``first`` layer, initialised as one), with less memory traffic.
    """

    def __init__(self, in_dim: int, units: Sequence[int], activation: str, dropout: float = 0.0
                 ) -> None:
        super().__init__()
        if not units:
            raise ValueError("a scoring MLP needs at least one hidden layer")
        self.first = nn.Linear(in_dim, units[0])
        after_first: list[nn.Module] = [unit_activation(activation, units[0])]
        if dropout > 0:
            after_first.append(nn.Dropout(dropout))
        self.after_first = nn.Sequential(*after_first)
        self.rest = activation_mlp(units[0], units[1:], activation, dropout)
        self.out = nn.Linear(self.rest.out_dim, 1)

    def blocks(self, *widths: int) -> tuple[torch.Tensor, ...]:
        """``first.weight`` split by input columns into blocks of these widths."""
        return self.first.weight.split(list(widths), dim=1)

    def score(self, first_output: torch.Tensor) -> torch.Tensor:
        """The output ``[...]`` from the first layer's ``[..., units[0]]`` (bias included)."""
        flat = first_output.flatten(0, -2)  # [N, units[0]]: Dice normalises over rows
        return self.out(self.rest(self.after_first(flat))).view(first_output.shape[:-1])


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the real positions of ``scores`` ``[B, L]``; padding gets weight 0 and a row
    without any real position all zeros (not the NaN of a softmax over nothing)."""
    weights = torch.softmax(scores.masked_fill(~mask, MASKED_SCORE), dim=-1)
    return weights * mask


class TargetAttention(nn.Module):
    """DIN's local activation unit (Zhou et al., KDD 2018, Sec. 4.3, Eq. 3):
    ``v = sum_l w_l k_l`` with ``w_l = MLP([q, k_l, q - k_l, q * k_l])``, the query ``q`` the
    target's embedding and ``k_l`` the behaviours'.

    The weights are not normalised (the paper keeps their sum as the intensity of the user's
    interest); ``softmax=True`` normalises them over the real positions (FuxiCTR's
    ``din_use_softmax``). Padding positions get weight 0 either way. The input layout is that
    of the authors' code and FuxiCTR's ``DIN_Attention``.
    """

    def __init__(self, dim: int, units: Sequence[int], activation: str = "dice",
                 dropout: float = 0.0, softmax: bool = False) -> None:
        super().__init__()
        self.mlp = ScoringMLP(4 * dim, units, activation, dropout)
        self.dim = dim
        self.softmax = softmax

    def weights(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """The weights ``[B, L]`` for ``query`` ``[B, d]``, ``keys`` ``[B, L, d]`` and ``mask``
        ``[B, L]``.

        The first layer ``W_q q + W_k k + W_d (q - k) + W_p (q * k) + b`` is computed as
        ``(W_q + W_d) q + b`` once per row plus ``k (W_k - W_d + W_p diag(q))^T`` per position:
        ``W_p (q * k) = (W_p diag(q)) k``, so each row's ``[d, U]`` kernel is built once and
        the positions take one product with ``d`` inputs, not ``2 d`` over a concatenation of
        ``k`` and ``q * k`` (the same function; sums in another order).
        """
        w_q, w_k, w_d, w_p = self.mlp.blocks(*[self.dim] * 4)
        per_row = F.linear(query, w_q + w_d, self.mlp.first.bias)  # [B, U]
        kernels = (w_k - w_d).t() + query.unsqueeze(-1) * w_p.t()  # [B, d, U]
        scores = self.mlp.score(per_row.unsqueeze(1) + keys @ kernels)
        if self.softmax:
            return masked_softmax(scores, mask)
        return scores * mask

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """The weighted sum of ``keys`` ``[B, d]``; zeros for a row without behaviours."""
        return (self.weights(query, keys, mask).unsqueeze(1) @ keys).squeeze(1)


class BilinearAttention(nn.Module):
    """DIEN's attention of the interest evolving layer (Zhou et al., AAAI 2019):
    ``a_t = softmax_t(h_t W e_a)`` over the real positions, ``e_a`` the target's embedding and
    ``h_t`` the extracted interests. ``W`` starts as the identity (FuxiCTR's
    ``bilinear_attention``); ``softmax=False`` keeps the masked raw scores."""

    def __init__(self, dim: int, softmax: bool = True) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(dim, dim))
        self.softmax = softmax
        self.init_weights()

    def init_weights(self) -> None:
        with torch.no_grad():
            self.kernel.copy_(torch.eye(self.kernel.shape[0]))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """The weights ``a`` ``[B, L]`` for ``query`` ``[B, d]``, ``keys`` ``[B, L, d]`` and
        ``mask`` ``[B, L]``."""
        scores = ((keys @ self.kernel) * query.unsqueeze(1)).sum(-1)
        if self.softmax:
            return masked_softmax(scores, mask)
        return scores * mask


class AttentionalGRU(nn.Module):
    """A GRU over ``[B, L, d]`` in DIEN's notation (Zhou et al., AAAI 2019, interest extractor
    layer): ``u_t = sigmoid(W_u i_t + U_u h_{t-1} + b_u)``, ``r_t`` likewise,
    ``h~_t = tanh(W_h i_t + b_h + r_t * (U_h h_{t-1} + b'_h))``,
    ``h_t = (1 - u_t) * h_{t-1} + u_t * h~_t``, ``h_0 = 0``.

    Given attention scores ``a`` ``[B, L]`` it is the interest evolving layer's AUGRU: the update
    gate becomes ``a_t * u_t``, so a behaviour unrelated to the target barely moves the state.

    Sequences are right-padded with a mask ``[B, L]`` (default: every position real). Like
    FuxiCTR's packed sequences, a step runs on the rows still going only: the rows are ordered
    by length once (longest first), so step ``t`` updates the first ``n_t`` of them, ``n_t``
    the rows longer than ``t``. States after a row's last behaviour are zero (:meth:`forward`),
    its last real state is :meth:`final_state` (zeros for an empty row, ``h_0``). The ``n_t``
    come from the mask, which stacked models under ``vmap`` share, so ``vmap`` applies.
    Traced or exported (TorchScript, ``torch.export``, ``torch.compile``), where a loop over
    data-dependent counts would be fixed to the example's or refused, every row steps through
    all ``L`` positions instead and keeps its state over padding (:meth:`_masked_run`): the same
    states, the ``n_t`` never read.

    ``uniform_init``: ``nn.GRU``'s start, U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias
    (FuxiCTR's DIEN extracts interests with ``nn.GRU``, which its reset leaves as it is);
    otherwise the model's Xavier-normal reset of linear layers applies (FuxiCTR's AUGRU cell).
    """

    def __init__(self, input_dim: int, hidden_dim: int, uniform_init: bool = False) -> None:
        super().__init__()
        self.input_gates = nn.Linear(input_dim, 3 * hidden_dim)
        self.state_gates = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.hidden_dim = hidden_dim
        self.uniform_init = uniform_init

    def init_weights(self) -> None:
        if self.uniform_init:
            bound = self.hidden_dim ** -0.5
            for p in self.parameters():
                nn.init.uniform_(p, -bound, bound)

    def forward(self, inputs: torch.Tensor, attention: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """The states ``h_1 .. h_L`` ``[B, L, H]``, zero after each row's last behaviour."""
        if _traced():
            return self._masked_run(inputs, attention, mask)[0]
        packing = Packing.of(inputs, mask)
        rows, length = inputs.shape[:2]
        states = inputs.new_zeros(rows * length, self.hidden_dim)
        if packing.counts:
            states = states.index_copy(0, packing.slots,
                                       torch.cat(list(self._steps(inputs, attention, packing))))
        return states.view(rows, length, self.hidden_dim)

    def final_state(self, inputs: torch.Tensor, attention: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's state after its last behaviour ``[B, H]`` (DIEN's evolved interest)."""
        if _traced():
            return self._masked_run(inputs, attention, mask)[1]
        packing = Packing.of(inputs, mask)
        counts = packing.counts
        # the sorted rows [n_{t+1}, n_t) end at step t: the last step's come first
        finals = [inputs.new_zeros(inputs.shape[0] - (counts[0] if counts else 0),
                                   self.hidden_dim)]  # the empty rows, last
        endings = [*counts[1:], 0][:len(counts)]
        for h, ending in zip(self._steps(inputs, attention, packing), endings, strict=True):
            finals.append(h[ending:])
        return torch.cat(finals[::-1]).index_select(0, packing.order.argsort())

    def _steps(self, inputs: torch.Tensor, attention: torch.Tensor | None, packing: Packing
               ) -> Iterator[torch.Tensor]:
        """The states of the running rows, ``[n_t, H]`` for each step ``t``."""
        # the input side of every real position in one product, already split by step
        steps = self.input_gates(packing.pack(inputs)).split(packing.counts)
        weights = (None if attention is None
                   else packing.pack(attention.unsqueeze(-1)).split(packing.counts))
        h = inputs.new_zeros(packing.counts[0] if packing.counts else 0, self.hidden_dim)
        for t, x_gates in enumerate(steps):
            h = self._step(x_gates, h[:len(x_gates)], None if weights is None else weights[t])
            yield h

    def _masked_run(self, inputs: torch.Tensor, attention: torch.Tensor | None,
                    mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The states ``[B, L, H]`` (zero at padding) and each row's last real state ``[B, H]``,
        every row stepped through all ``L`` positions, its state kept over padding."""
        real = (torch.ones_like(inputs[..., 0]) if mask is None else mask).unsqueeze(-1) > 0
        # unbind, not x[:, t]: the backward of L selects would write L full-size zero tensors
        steps = self.input_gates(inputs).unbind(1)
        weights = None if attention is None else attention.unsqueeze(-1).unbind(1)
        h = inputs.new_zeros(inputs.shape[0], self.hidden_dim)
        states = []
        for t, (x_gates, is_real) in enumerate(zip(steps, real.unbind(1), strict=True)):
            stepped = self._step(x_gates, h, None if weights is None else weights[t])
            states.append(torch.where(is_real, stepped, 0.0))
            h = torch.where(is_real, stepped, h)
        return torch.stack(states, dim=1), h

    def _step(self, x_gates: torch.Tensor, h: torch.Tensor, weight: torch.Tensor | None
              ) -> torch.Tensor:
        """One step from state ``h`` given the input side of the gates (and AUGRU's score)."""
        x_update, x_reset, x_new = x_gates.chunk(3, dim=-1)
        h_update, h_reset, h_new = self.state_gates(h).chunk(3, dim=-1)
        update = torch.sigmoid(x_update + h_update)
        if weight is not None:
            update = weight * update
        reset = torch.sigmoid(x_reset + h_reset)
        candidate = torch.tanh(x_new + reset * h_new)
        return h + update * (candidate - h)


def _traced() -> bool:
    """Whether the forward pass is being traced, exported or compiled, not run."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


@dataclass(frozen=True)
class Packing:
    """Right-padded rows ``[B, L]`` as :class:`AttentionalGRU` steps through them (FuxiCTR's
    ``pack_padded_sequence`` layout): rows longest first (``order``), step ``t`` holding the
    first ``counts[t]`` of them (the rows longer than ``t``), and each packed position's slot
    ``row * L + t`` in the flattened ``[B * L]`` positions."""

    order: torch.Tensor
    counts: list[int]
    slots: torch.Tensor

    @classmethod
    def of(cls, inputs: torch.Tensor, mask: torch.Tensor | None) -> Packing:
        """The packing of ``mask`` (default: every position of ``inputs`` real)."""
        device = inputs.device
        rows, length = inputs.shape[:2]
        lengths = (mask.sum(1) if mask is not None
                   else torch.full((rows,), length, device=device))
        order = lengths.argsort(descending=True, stable=True)
        counts = [n for n in (lengths.unsqueeze(0) > torch.arange(length, device=device)
                              .unsqueeze(1)).sum(1).tolist() if n > 0]
        if not counts:
            return cls(order, [], torch.zeros(0, dtype=torch.long, device=device))
        sorted_rows = torch.cat([torch.arange(n, device=device) for n in counts])
        steps = torch.arange(len(counts), device=device).repeat_interleave(
            torch.tensor(counts, device=device))
        return cls(order, counts, order[sorted_rows] * length + steps)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, L, ...]`` at the packed positions, ``[sum(counts), ...]``."""
        return x.flatten(0, 1).index_select(0, self.slots)
