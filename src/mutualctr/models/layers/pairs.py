"""Index helpers for the ``F (F - 1) / 2`` unordered field pairs ``i < j``."""

from __future__ import annotations

import torch


def pair_indices(num_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``i`` and columns ``j`` of the strict upper triangle, row-major (``(0,1), (0,2)..``)."""
    rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
    return rows, cols


def num_pairs(num_fields: int) -> int:
    return num_fields * (num_fields - 1) // 2
