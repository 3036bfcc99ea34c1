"""The unit of data that flows from the loader into models and objectives."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """A batch of encoded rows.

    Attributes:
        categorical: int64 ``[B, n_categorical]`` field-local ids (see ``data.schema``).
        numeric: float32 ``[B, n_numeric]`` scaled numeric values (``[B, 0]`` when none).
        sequences: one int64 ``[B, max_len]`` tensor per sequence field, ``0`` = padding.
        label: float32 ``[B]`` clicks in {0, 1}.
        prob: float32 ``[B]`` true click probabilities (synthetic data only) or ``None``.
    """

    categorical: torch.Tensor
    numeric: torch.Tensor
    sequences: tuple[torch.Tensor, ...]
    label: torch.Tensor
    prob: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Batch(
            categorical=move(self.categorical),
            numeric=move(self.numeric),
            sequences=tuple(move(s) for s in self.sequences),
            label=move(self.label),
            prob=None if self.prob is None else move(self.prob),
        )
