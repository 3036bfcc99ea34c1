"""Factorization machine's second-order term (Rendle, 2010)."""

from __future__ import annotations

import torch


def fm_interaction(emb: torch.Tensor) -> torch.Tensor:
    """Per-dimension pairwise interactions ``sum_{i<j} v_i * v_j``: ``[B, F, D]`` -> ``[B, D]``.

    Uses the sum-square identity (Rendle 2010, Eq. 4): ``sum_{i<j} v_i v_j =
    ((sum_i v_i)^2 - sum_i v_i^2) / 2``, O(F D) instead of O(F^2 D). Summing the result over ``D``
    gives FM's second-order term ``sum_{i<j} <v_i, v_j>``.
    """
    return 0.5 * (emb.sum(dim=1).square() - emb.square().sum(dim=1))
