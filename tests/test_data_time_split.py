"""``--split time``: rows ordered by (time, input order), cut at exact sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from data_files import build, write_lines
from mutualctr.cli import main
from mutualctr.data.prepare import SplitOptions, _TimeSplitter, prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.base import ParsedChunk
from mutualctr.data.readers.tabular import TabularSpec
from mutualctr.data.schema import FieldSpec
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError

TIME = SplitOptions("time", (0.8, 0.1, 0.1))


def expected_splits(times: list[float], ratios: tuple[float, ...]) -> np.ndarray:
    """The oracle: rank rows by (time, position), cut the ranks at round(c * N)."""
    n = len(times)
    order = np.lexsort((np.arange(n), np.asarray(times)))
    ends = np.floor(np.cumsum(ratios)[:-1] / sum(ratios) * n + 0.5).astype(int)
    which = np.empty(n, dtype=np.int8)
    which[order] = np.searchsorted(ends, np.arange(n), side="right")
    return which


def chunk(times: np.ndarray) -> ParsedChunk:
    n = len(times)
    return ParsedChunk({}, np.zeros(n, np.float32), np.arange(n), pa.table({}), times)


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.5, 0.0, 0.5), (1.0, 0.0, 0.0),
                                    (0.0, 0.3, 0.7)])
def test_routing_chunk_by_chunk_matches_a_full_sort(ratios: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 10, 97, 1000):
        times = rng.integers(0, max(n // 10, 2), size=n).astype(np.float64)  # many ties
        splitter = _TimeSplitter(times.copy(), ratios)
        bounds = np.sort(rng.choice(np.arange(1, n + 1), size=min(n, 5), replace=False))
        pieces = np.split(times, bounds[:-1])
        got = np.concatenate([splitter(0, chunk(piece)) for piece in pieces])
        np.testing.assert_array_equal(got, expected_splits(list(times), ratios))


# Sorted by user (as GroupLens ships them), not by time; three rows tie at hour 9, on both cuts.
HOURS = [5, 1, 9, 3, 9, 2, 9, 4, 6, 7]
USERS = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]


def movielens(folder: Path) -> Path:
    folder.mkdir()
    write_lines(folder / "movies.csv", ["movieId,title,genres", "10,A,Comedy|Drama", "20,B,Drama"])
    rows = [f"{u},{10 + 10 * (k % 2)},{1 + k % 5}.0,{h * 3600}"
            for k, (u, h) in enumerate(zip(USERS, HOURS, strict=True))]
    return write_lines(folder / "ratings.csv", ["userId,movieId,rating,timestamp", *rows])


def test_movielens_split_by_timestamp_with_ties_by_file_order(tmp_path: Path) -> None:
    ratings = movielens(tmp_path / "ml")
    store = build(tmp_path, "movielens", [ratings], split=TIME)
    # time order: rows 1 5 3 7 0 8 9 | then hour 9: rows 2 (train), 4 (valid), 6 (test)
    which = expected_splits(HOURS, (0.8, 0.1, 0.1))
    assert list(np.flatnonzero(which == 1)) == [4] and list(np.flatnonzero(which == 2)) == [6]
    everything, _ = store.encode_file(ratings)  # every row in file order, same encoder
    for k, name in enumerate(("train", "valid", "test")):
        split = store.split(name)
        rows = np.flatnonzero(which == k)
        assert store.meta["splits"][name]["rows"] == len(rows)
        np.testing.assert_array_equal(split.categorical, everything.categorical[rows])
        np.testing.assert_array_equal(split.label, everything.label[rows])
    assert store.meta["settings"]["split"]["method"] == "time"


def test_chronological_is_still_refused_for_movielens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use --split time"):
        build(tmp_path, "movielens", [movielens(tmp_path / "ml")],
              split=SplitOptions("chronological"))


SCHEMA = TabularSpec("y", (FieldSpec("x", "numeric"),))


def csv_file(tmp_path: Path, lines: list[str]) -> Path:
    """Label ``y``, one numeric field ``x`` (the row's position), times in column ``ts``."""
    return write_lines(tmp_path / "t.csv", ["y,x,ts", *lines])


def rows_by_x(store: EncodedStore, name: str) -> list[int]:
    """Each row's ``x`` (its position in the file), undoing the standardisation."""
    mean, std = store.encoder.scalers["x"]
    return np.rint(store.split(name).numeric[:, 0] * std + mean).astype(int).tolist()


def test_csv_time_column_from_the_cli_and_skipped_rows(tmp_path: Path) -> None:
    stamps = ["30", "10", "20", "x", "20", "", "40", "5", "20", "50", "1.5e1", "60"]
    lines = [f"{k % 2},{k},{t}" for k, t in enumerate(stamps)]
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump({"label": "y", "fields": [{"name": "x", "type": "numeric"}]}))
    assert main(["data", "prepare", "--format", "csv", "--schema", str(schema),
                 str(csv_file(tmp_path, lines)), "--out", str(tmp_path / "store"),
                 "--split", "time", "--time-column", "ts", "--ratios", "0.5", "0.25", "0.25",
                 "--on-bad-row", "skip"]) == 0
    store = EncodedStore.open(tmp_path / "store")
    assert store.meta["skipped"]["by_reason"] == {"ts: not a number": 1, "ts: time is missing": 1}
    assert store.meta["settings"]["split"]["time_column"] == "ts"
    # 10 kept rows, cut after 5 and 8. By time: x=7 (5), 1 (10), 10 (15), 2 (20), 4 (20) |
    # 8 (20, the third of the tie), 0 (30), 6 (40) | 9 (50), 11 (60); each split in file order.
    assert rows_by_x(store, "train") == [1, 2, 4, 7, 10]
    assert rows_by_x(store, "valid") == [0, 6, 8]
    assert rows_by_x(store, "test") == [9, 11]


def test_bad_time_names_file_line_and_field(tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["0,0,1", "1,1,2", "0,2,soon"])
    with pytest.raises(DataError, match="not a number") as info:
        prepare([path], tmp_path / "store", "csv", reader_options=ReaderOptions(tabular=SCHEMA),
                split=SplitOptions("time", time_column="ts"))
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 4, "ts")


@pytest.mark.parametrize(("fmt", "split", "message"), [
    ("criteo", SplitOptions("time"), "use --split chronological"),
    ("csv", SplitOptions("time"), "needs --time-column"),
    ("movielens", SplitOptions("time", time_column="ts"), "only be named for --format csv"),
])
def test_time_split_needs_a_time_per_row(fmt: str, split: SplitOptions, message: str,
                                         tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["1,2,3"])
    with pytest.raises(ConfigError, match=message):
        prepare([path], tmp_path / "store", fmt, reader_options=ReaderOptions(tabular=SCHEMA),
                split=split)
    with pytest.raises(ConfigError, match="only used by --split time"):
        SplitOptions("random", time_column="ts")
