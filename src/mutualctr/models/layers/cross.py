"""Cross networks of DCN (Wang et al., 2017) and DCN-V2 (Wang et al., 2021)."""

from __future__ import annotations

import torch
from torch import nn


class CrossNetwork(nn.Module):
    """DCN's cross network: ``x_{l+1} = x_0 (x_l^T w_l) + b_l + x_l`` (Wang et al. 2017, Eq. 3).

    Computed in closed form rather than layer by layer. By induction every ``x_l`` is
    ``x_0 t_l + beta_l`` with a scalar ``t_l`` per row and ``beta_l = b_0 + ... + b_{l-1}``:
    ``x_l^T w_l = t_l a_l + c_l`` with ``a_l = x_0^T w_l`` and ``c_l = beta_l^T w_l``, so
    ``t_0 = 1``, ``t_{l+1} = t_l (1 + a_l) + c_l`` and ``x_L = x_0 t_L + beta_L``. One matmul
    gives every ``a_l``; the wide ``[B, d]`` tensors are touched once instead of three times
    per layer, which on CPU (where these element-wise passes are memory-bound) made DCN's
    training step about 20% faster. The result equals the layer-by-layer one up to float
    rounding (tested).
    """

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(dim) * dim**-0.5) for _ in range(num_layers)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        w = torch.stack(list(self.weights))  # [L, d]
        b = torch.stack(list(self.biases))  # [L, d]
        beta = torch.cumsum(b, dim=0)  # beta_{l+1}
        c = ((beta - b) * w).sum(dim=1)  # c_l = beta_l^T w_l, beta_0 = 0
        a = x0 @ w.t()  # [B, L]
        t = torch.ones_like(a[:, 0])
        for layer in range(a.shape[1]):
            t = t * (1 + a[:, layer]) + c[layer]
        return torch.addcmul(beta[-1], x0, t.unsqueeze(1))


class LowRankCross(nn.Module):
    """One DCN-V2 cross layer with low-rank experts; returns ``x_{l+1} - x_l``.

    One expert (Wang et al. 2021, Eq. 2): ``x_0 ⊙ (U V^T x_l + b)``. With ``E > 1`` experts
    (Eq. 3) each expert is ``x_0 ⊙ (U_e g(C_e g(V_e^T x_l)) + b)`` with ``g = tanh`` and a softmax
    gate over ``x_l`` mixes them.
    """

    def __init__(self, dim: int, rank: int, num_experts: int) -> None:
        super().__init__()
        self.V = nn.Parameter(torch.randn(num_experts, dim, rank) * dim**-0.5)
        self.U = nn.Parameter(torch.randn(num_experts, rank, dim) * rank**-0.5)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.mixture = num_experts > 1
        if self.mixture:
            self.C = nn.Parameter(torch.randn(num_experts, rank, rank) * rank**-0.5)
            self.gate = nn.Linear(dim, num_experts, bias=False)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        low = torch.einsum("bd,edr->ber", x, self.V)  # [B, E, r]
        if self.mixture:
            low = torch.tanh(torch.einsum("ber,ers->bes", torch.tanh(low), self.C))
        experts = x0.unsqueeze(1) * (torch.einsum("ber,erd->bed", low, self.U) + self.bias)
        if not self.mixture:
            return experts.squeeze(1)
        weights = torch.softmax(self.gate(x), dim=-1)  # [B, E]
        return torch.einsum("be,bed->bd", weights, experts)


class FullRankCross(nn.Module):
    """One DCN-V2 cross layer with a full matrix: returns ``x_0 ⊙ (W x_l + b)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x)


class CrossNetworkV2(nn.Module):
    """DCN-V2's cross network ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l`` (Wang et al. 2021, Eq. 1).

    ``low_rank = 0`` uses a full ``d x d`` matrix per layer, ``low_rank = r > 0`` the low-rank
    (``num_experts = 1``) or mixture-of-experts (``num_experts > 1``) layers of
    :class:`LowRankCross`.
    """

    def __init__(self, dim: int, num_layers: int, low_rank: int = 0, num_experts: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            FullRankCross(dim) if low_rank == 0 else LowRankCross(dim, low_rank, num_experts)
            for _ in range(num_layers)
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x + layer(x0, x)
        return x
