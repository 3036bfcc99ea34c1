"""BatchLoader: order, determinism, resume, sharding, last partial batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mutualctr.data.loader import BatchLoader
from mutualctr.data.store import SplitArrays


def make_split(n: int, with_prob: bool = True) -> SplitArrays:
    """Row i carries i in every column, so a batch's rows can be read off any array."""
    rows = np.arange(n)
    return SplitArrays(
        categorical=np.stack([rows, rows + 1], axis=1).astype(np.int32),
        numeric=(rows[:, None] * 0.5).astype(np.float32),
        sequences=(np.stack([rows, rows, rows], axis=1).astype(np.int32),),
        label=rows.astype(np.float32),
        prob=(rows / 100.0).astype(np.float32) if with_prob else None,
    )


def row_ids(loader: BatchLoader, epoch: int, start: int = 0) -> list[list[int]]:
    return [b.label.long().tolist() for b in loader.batches(epoch, start)]


def epoch_rows(loader: BatchLoader, epoch: int) -> list[int]:
    return [i for batch in row_ids(loader, epoch) for i in batch]


def test_unshuffled_batches_are_consecutive_and_last_is_partial() -> None:
    loader = BatchLoader(make_split(10), batch_size=4)
    assert len(loader) == 3
    assert row_ids(loader, 0) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    batch = next(iter(loader.batches(0)))
    assert batch.categorical.dtype == torch.int64
    assert batch.categorical[:, 1].tolist() == [1, 2, 3, 4]
    assert batch.numeric.dtype == torch.float32
    assert batch.numeric[:, 0].tolist() == [0.0, 0.5, 1.0, 1.5]
    assert batch.sequences[0].dtype == torch.int64
    assert batch.sequences[0][3].tolist() == [3, 3, 3]
    assert batch.prob is not None and batch.prob.tolist() == pytest.approx([0, 0.01, 0.02, 0.03])


def test_drop_last_drops_the_partial_batch() -> None:
    loader = BatchLoader(make_split(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert row_ids(loader, 0) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_no_prob_gives_none() -> None:
    batch = next(iter(BatchLoader(make_split(5, with_prob=False), 2).batches(0)))
    assert batch.prob is None


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_shuffle_is_a_permutation_seeded_by_seed_and_epoch(block: int) -> None:
    split = make_split(103)
    loader = BatchLoader(split, 10, shuffle=True, seed=3, shuffle_block_rows=block)
    epoch0 = epoch_rows(loader, 0)
    assert sorted(epoch0) == list(range(103))
    assert epoch0 != list(range(103))
    again = BatchLoader(split, 10, shuffle=True, seed=3, shuffle_block_rows=block)
    assert epoch_rows(again, 0) == epoch0
    assert epoch_rows(loader, 1) != epoch0
    other_seed = BatchLoader(split, 10, shuffle=True, seed=4, shuffle_block_rows=block)
    assert epoch_rows(other_seed, 0) != epoch0


def test_batches_carry_aligned_columns_after_shuffle() -> None:
    loader = BatchLoader(make_split(50), 8, shuffle=True, seed=0, shuffle_block_rows=16)
    for batch in loader.batches(2):
        ids = batch.label.long()
        assert torch.equal(batch.categorical[:, 0], ids)
        assert torch.equal(batch.categorical[:, 1], ids + 1)
        assert torch.equal(batch.sequences[0][:, 2], ids)
        assert torch.allclose(batch.numeric[:, 0], ids.float() * 0.5)


def test_resume_at_start_gives_the_remaining_batches() -> None:
    loader = BatchLoader(make_split(97), 8, shuffle=True, seed=11, shuffle_block_rows=20)
    full = row_ids(loader, 5)
    for start in (0, 1, 6, len(loader) - 1, len(loader)):
        assert row_ids(loader, 5, start) == full[start:]


def test_shards_are_equal_in_length_disjoint_and_cover_all_but_the_remainder() -> None:
    split = make_split(103)  # 11 batches of 10 (last has 3)
    shards = [
        row_ids(BatchLoader(split, 10, shuffle=True, seed=2, rank=r, world_size=3,
                            shuffle_block_rows=25), 0)
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [3, 3, 3]  # 11 // 3; two batches skipped
    rows = [i for s in shards for b in s for i in b]
    assert len(rows) == len(set(rows)) == 90
    single = row_ids(BatchLoader(split, 10, shuffle=True, seed=2, shuffle_block_rows=25), 0)
    assert [shards[j % 3][j // 3] for j in range(9)] == single[:9]


def test_shard_resume() -> None:
    loader = BatchLoader(make_split(200), 7, shuffle=True, seed=1, rank=1, world_size=2)
    assert row_ids(loader, 0, 4) == row_ids(loader, 0)[4:]


def test_empty_split_and_bad_arguments() -> None:
    assert len(BatchLoader(make_split(0), 4)) == 0
    assert row_ids(BatchLoader(make_split(0), 4, shuffle=True), 0) == []
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(make_split(3), 0)
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(make_split(3), 1, rank=2, world_size=2)
    with pytest.raises(ValueError, match="start"):
        list(BatchLoader(make_split(3), 1).batches(0, start=4))


def test_split_arrays_validate_shapes() -> None:
    with pytest.raises(ValueError, match="categorical"):
        SplitArrays(categorical=np.zeros((3, 2)), numeric=np.zeros((2, 0)), sequences=(),
                    label=np.zeros(2))
