"""How long the behaviour histories of a store are: what ``data info`` prints per history field
and split (``readers.history`` builds them).

A history's length is its number of non-padding ids (histories are padded on the right with
0). Lengths are counted block by block into a histogram of ``max_len + 1`` bins, so a split of
any size costs one read of its ``seq_<k>.npy`` and no memory per row; the quantiles are
computed from the histogram exactly as ``numpy.quantile``'s default (linear) method computes
them from the sorted lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mutualctr.data.readers import ReaderOptions, make_reader
from mutualctr.data.readers.history import HistorySpec, history_name
from mutualctr.data.readers.movielens import MovieLensReader
from mutualctr.data.readers.tabular import TabularReader
from mutualctr.data.store import EncodedStore

BLOCK_ROWS = 1 << 16  # rows of a sequence array read at a time


@dataclass(frozen=True)
class HistoryLengths:
    """One history field of one split: where it is stored and how long its rows' histories
    are."""

    field: str
    split: str
    file: str  # relative to the store: ``<split>/seq_<k>.npy``
    rows: int
    minimum: float
    median: float
    p90: float
    maximum: float
    empty: float  # share of rows with an empty history (all padding)

    def line(self) -> str:
        """E.g. ``hist_item  train/seq_0.npy  length min 0, median 2, p90 4.1, max 5; empty
        25.0% of 4 rows``."""
        if not self.rows:
            return f"{self.field}  {self.file}  no rows"
        return (f"{self.field}  {self.file}  length min {self.minimum:g}, median "
                f"{self.median:g}, p90 {self.p90:g}, max {self.maximum:g}; empty "
                f"{100 * self.empty:.1f}% of {self.rows:,d} rows")


def store_history(store: EncodedStore) -> HistorySpec | None:
    """The histories the store's rows have (``None``: none), from its recorded settings."""
    settings = store.meta["settings"]
    options = ReaderOptions.from_settings(
        {k: v for k, v in settings.items() if k in ReaderOptions.__dataclass_fields__})
    reader = make_reader(settings["format"], options)
    if isinstance(reader, TabularReader):
        return reader.spec.history
    if isinstance(reader, MovieLensReader):
        return reader.history
    return None


def length_counts(sequences: np.ndarray) -> np.ndarray:
    """``counts[n]``: the rows of ``sequences`` ([N, max_len], 0 = padding) with ``n`` ids."""
    counts = np.zeros(sequences.shape[1] + 1, dtype=np.int64)
    for start in range(0, len(sequences), BLOCK_ROWS):
        lengths = np.count_nonzero(sequences[start:start + BLOCK_ROWS], axis=1)
        counts += np.bincount(lengths, minlength=len(counts))
    return counts


def quantile(counts: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the values ``n`` counted ``counts[n]`` times (at least one), as
    ``numpy.quantile(values, q)`` gives it: between the sorted values at ``floor(h)`` and
    ``floor(h) + 1``, ``h = (N - 1) q``, linearly."""
    cumulative = np.cumsum(counts)
    h = (int(cumulative[-1]) - 1) * q
    low = int(np.floor(h))
    at = np.searchsorted(cumulative, [low, min(low + 1, int(cumulative[-1]) - 1)], side="right")
    return float(at[0] + (h - low) * (at[1] - at[0]))


def history_lengths(store: EncodedStore) -> list[HistoryLengths]:
    """Per history field, per split: its file and its length statistics."""
    history = store_history(store)
    if history is None:
        return []
    sequence = [f.name for f in store.feature_map.sequence]
    found = []
    for column in history.columns:
        index = sequence.index(history_name(column))
        for split in store.split_names:
            counts = length_counts(store.split(split).sequences[index])
            rows = int(counts.sum())
            stats = ([quantile(counts, q) for q in (0.0, 0.5, 0.9, 1.0)] if rows
                     else [0.0] * 4)
            found.append(HistoryLengths(history_name(column), split, f"{split}/seq_{index}.npy",
                                        rows, *stats, empty=counts[0] / rows if rows else 0.0))
    return found
