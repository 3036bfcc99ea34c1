"""The encoded rows of one split as arrays: what the encoder produces, a store holds and the
loader batches.

Kept apart from the store so the encoder (which produces them) and the store (which holds the
encoder) both build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mutualctr.data.schema import FeatureMap


@dataclass(frozen=True)
class SplitArrays:
    """The encoded rows of one split (memory-mapped from a store, or plain in-memory arrays).

    Attributes:
        categorical: int32 ``[N, n_categorical]`` field-local ids.
        numeric: float32 ``[N, n_numeric]``.
        sequences: one int32 ``[N, max_len]`` array per sequence feature, ``0`` = padding.
        label: float32 ``[N]``.
        prob: float32 ``[N]`` true click probabilities, or ``None``.
    """

    categorical: np.ndarray
    numeric: np.ndarray
    sequences: tuple[np.ndarray, ...]
    label: np.ndarray
    prob: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        if self.label.ndim != 1:
            raise ValueError(f"label must be 1-d, got shape {self.label.shape}")
        named = [("categorical", self.categorical), ("numeric", self.numeric)]
        named += [(f"sequences[{k}]", s) for k, s in enumerate(self.sequences)]
        for name, arr in named:
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"{name} must have shape [{n}, *], got {arr.shape}")
        if self.prob is not None and self.prob.shape != (n,):
            raise ValueError(f"prob must have shape [{n}], got {self.prob.shape}")

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> SplitArrays:
        """Apply ``fn`` to every array (e.g. a row slice or mask)."""
        return SplitArrays(
            categorical=fn(self.categorical),
            numeric=fn(self.numeric),
            sequences=tuple(fn(s) for s in self.sequences),
            label=fn(self.label),
            prob=None if self.prob is None else fn(self.prob),
        )

    @staticmethod
    def concat(parts: Sequence[SplitArrays]) -> SplitArrays:
        """The rows of ``parts`` one after the other (at least one part)."""
        first = parts[0]
        return SplitArrays(
            categorical=np.concatenate([p.categorical for p in parts]),
            numeric=np.concatenate([p.numeric for p in parts]),
            sequences=tuple(np.concatenate([p.sequences[k] for p in parts])
                            for k in range(len(first.sequences))),
            label=np.concatenate([p.label for p in parts]),
            prob=None if first.prob is None else np.concatenate([p.prob for p in parts]),
        )

    @classmethod
    def empty(cls, feature_map: FeatureMap) -> SplitArrays:
        """Zero rows shaped for ``feature_map``."""
        return cls(
            categorical=np.zeros((0, len(feature_map.categorical)), np.int32),
            numeric=np.zeros((0, len(feature_map.numeric)), np.float32),
            sequences=tuple(np.zeros((0, f.max_len), np.int32) for f in feature_map.sequence),
            label=np.zeros(0, np.float32),
        )

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(file stem, array) pairs, in the store's naming."""
        yield "categorical", self.categorical
        yield "numeric", self.numeric
        for k, seq in enumerate(self.sequences):
            yield f"seq_{k}", seq
        yield "label", self.label
        if self.prob is not None:
            yield "prob", self.prob
