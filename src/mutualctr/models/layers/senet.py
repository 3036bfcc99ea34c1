"""Squeeze-and-excitation over fields (FiBiNET, Huang et al., 2019, Sec. 3.3)."""

from __future__ import annotations

import torch
from torch import nn


class SENet(nn.Module):
    """Reweights each field embedding: ``[B, F, D]`` -> ``[B, F, D]``.

    Squeeze: ``z_f = mean(v_f)``; excitation: ``a = ReLU(W_2 ReLU(W_1 z))`` with
    ``W_1: F -> max(1, F // reduction_ratio)``, both without bias, as in the paper's Eq. 3-4;
    re-weight: ``v_f * a_f``.
    """

    def __init__(self, num_fields: int, reduction_ratio: float = 3.0) -> None:
        super().__init__()
        reduced = max(1, int(num_fields / reduction_ratio))
        self.excitation = nn.Sequential(
            nn.Linear(num_fields, reduced, bias=False),
            nn.ReLU(),
            nn.Linear(reduced, num_fields, bias=False),
            nn.ReLU(),
        )

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        weights = self.excitation(emb.mean(dim=2))  # [B, F]
        return emb * weights.unsqueeze(2)
