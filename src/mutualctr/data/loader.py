"""Batches of encoded rows as tensors, from contiguous slices; seeded shuffling; rank sharding.

Order of an epoch. Without shuffling, rows come in store order. With shuffling, the rows are cut
into blocks of ``shuffle_block_rows`` consecutive rows; the order of the blocks is a permutation
drawn from ``(seed, epoch)``, and each block's rows are permuted by a generator drawn from
``(seed, epoch, block)``. A block is read into memory in one contiguous read and permuted there,
so shuffling costs one memcpy per row instead of a random access into a memory-mapped file. The
order depends on ``(seed, epoch)`` only: resuming with ``batches(epoch, start)`` yields exactly
the batches that were left.

Batches. The epoch's row order is cut into ``T`` batches of ``batch_size`` rows; the last one is
partial unless ``drop_last`` (then it is dropped). Global batch ``j`` goes to rank
``j % world_size``. Every rank gets ``T // world_size`` batches, so all ranks run the same number
of steps (DDP needs this); the ``T % world_size`` batches left over are skipped for that epoch
(with shuffling, different rows each epoch). With ``world_size == 1`` nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.batch import Batch

DEFAULT_SHUFFLE_BLOCK_ROWS = 1 << 18


class BatchLoader:
    """Yields :class:`Batch` es of one split for one rank.

    Args:
        split: the encoded rows (memory-mapped or in memory).
        batch_size: rows per batch.
        shuffle: shuffle per epoch (see the module docstring for how).
        seed: seed of the shuffle.
        rank, world_size: this process's shard of the batches.
        drop_last: drop the last batch when it is partial.
        shuffle_block_rows: rows per contiguous block read and permuted in memory.
        pin_memory: put the batches in page-locked memory, so that their copy to a CUDA device
            can run asynchronously (``Batch.to(device, non_blocking=True)``).
    """

    def __init__(
        self, split: SplitArrays, batch_size: int, shuffle: bool = False, seed: int = 0,
        rank: int = 0, world_size: int = 1, drop_last: bool = False,
        shuffle_block_rows: int = DEFAULT_SHUFFLE_BLOCK_ROWS, pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, "
                             f"world_size={world_size}")
        if shuffle_block_rows < 1:
            raise ValueError(f"shuffle_block_rows must be >= 1, got {shuffle_block_rows}")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.block_rows = shuffle_block_rows if shuffle else max(len(split), 1)
        n = len(split)
        self.total_batches = n // batch_size if drop_last else -(-n // batch_size)

    def __len__(self) -> int:
        return self.total_batches // self.world_size

    def _global_batch_ids(self, start: int) -> range:
        return range(self.rank + start * self.world_size, len(self) * self.world_size,
                     self.world_size)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` for this rank, from its ``start``-th batch on."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in [0, {len(self)}], got {start}")
        order = _EpochOrder(self.split, self.block_rows, self.shuffle, self.seed, epoch)
        n, b = len(self.split), self.batch_size
        for j in self._global_batch_ids(start):
            yield _to_batch(order.rows(j * b, min((j + 1) * b, n)), self.pin_memory)


class _EpochOrder:
    """The epoch's row order as blocks; serves position ranges, keeping one block in memory."""

    def __init__(
        self, split: SplitArrays, block_rows: int, shuffle: bool, seed: int, epoch: int,
    ) -> None:
        self.split = split
        self.block_rows = block_rows
        self.shuffle = shuffle
        self.seed, self.epoch = seed, epoch
        n_blocks = -(-len(split) // block_rows)
        self.blocks = (
            np.random.default_rng([seed, epoch]).permutation(n_blocks) if shuffle
            else np.arange(n_blocks)
        )
        sizes = np.minimum(block_rows, len(split) - self.blocks * block_rows)
        self.ends = np.cumsum(sizes)  # position after the last row of each block, epoch order
        self._cached: tuple[int, SplitArrays] | None = None

    def _block(self, k: int) -> SplitArrays:
        """The rows of the ``k``-th block of the epoch, in epoch order."""
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1]
        block = int(self.blocks[k])
        lo = block * self.block_rows
        hi = min(lo + self.block_rows, len(self.split))
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, block]).permutation(hi - lo)
            rows = self.split.map(lambda a: np.asarray(a[lo:hi])[perm])
        else:
            rows = self.split.map(lambda a: a[lo:hi])
        self._cached = (k, rows)
        return rows

    def rows(self, lo: int, hi: int) -> SplitArrays:
        """Rows at epoch positions ``[lo, hi)``."""
        pieces = []
        k = int(np.searchsorted(self.ends, lo, side="right"))
        while lo < hi:
            start = int(self.ends[k - 1]) if k else 0
            stop = min(hi, int(self.ends[k]))
            pieces.append(self._block(k).map(lambda a, a0=lo - start, a1=stop - start: a[a0:a1]))
            lo, k = stop, k + 1
        return pieces[0] if len(pieces) == 1 else SplitArrays.concat(pieces)


def _to_batch(rows: SplitArrays, pin_memory: bool = False) -> Batch:
    def tensor(a: np.ndarray, dtype: type) -> torch.Tensor:
        t = torch.from_numpy(np.array(a, dtype=dtype))
        return t.pin_memory() if pin_memory else t

    def ids(a: np.ndarray) -> torch.Tensor:
        return tensor(a, np.int64)

    def floats(a: np.ndarray) -> torch.Tensor:
        return tensor(a, np.float32)

    return Batch(
        categorical=ids(rows.categorical),
        numeric=floats(rows.numeric),
        sequences=tuple(ids(s) for s in rows.sequences),
        label=floats(rows.label),
        prob=None if rows.prob is None else floats(rows.prob),
    )
