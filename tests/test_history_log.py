"""Logs of user events through ``data prepare``: history-only events (``--history-log``), the
required ``history.events`` choice, ``--split user-last`` without leakage, and ``data info``'s
history lines. The DIN recipe's log is built from MovieLens latest-small: each user's first
movie a history-only event, each next movie a positive row with one sampled never-rated movie
at the same time as its negative."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import yaml

from data_files import write_lines
from mutualctr.cli import main
from mutualctr.data.history_lengths import quantile
from mutualctr.data.readers.base import BadRows, ParsedChunk
from mutualctr.data.readers.history import HistoryBuilder, HistorySpec
from mutualctr.data.store import EncodedStore

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_latest_small"
HEADER = "user,time,item,cat,click"
# u1 rates c at 3 (n1: its sampled negative), e at 5, g at 7; u2 d at 4, f at 6 (a negative)
ROWS = ["u1,3,c,x,1", "u1,3,n1,y,0", "u2,4,d,y,1", "u1,5,e,x,1", "u2,6,f,y,0", "u1,7,g,x,1"]
# history-only events: each user's first item, and z for u1 at 5 (a row of u1 is at 5 too)
LOG = ["user,time,item,cat", "u1,1,a,x", "u2,2,b,y", "u1,5,z,x"]


def write_schema(path: Path, events: str | None = "positive", max_len: int = 3,
                 fields: tuple[str, ...] = ("item", "cat")) -> Path:
    history = {"user": "user", "time": "time", "columns": ["item", "cat"], "max_len": max_len}
    if events is not None:
        history["events"] = events
    schema = {"label": "click", "fields": [{"name": n, "type": "categorical"} for n in fields],
              "history": history}
    path.write_text(yaml.safe_dump(schema))
    return path


def prepare(tmp_path: Path, rows: list[str], *options: str, out: str = "store",
            log: list[str] | None = LOG, events: str | None = "positive") -> int:
    """``data prepare`` on the rows (and the log) written to ``tmp_path``."""
    rows_path = write_lines(tmp_path / "rows.csv", [HEADER, *rows])
    schema = write_schema(tmp_path / "schema.yaml", events)
    logged = ["--history-log", str(write_lines(tmp_path / "log.csv", log))] if log else []
    return main(["data", "prepare", str(rows_path), "--format", "csv", "--schema", str(schema),
                 "--out", str(tmp_path / out), *logged, *options])


def decoded(store: EncodedStore, split: str, field: str = "hist_item") -> list[list[str]]:
    """A sequence field's rows as raw values: padding and OOV ids (values not kept in train)
    dropped."""
    index = [f.name for f in store.feature_map.sequence].index(field)
    owner = next(f.share_with for f in store.feature_map.sequence if f.name == field)
    vocab = store.encoder.vocabs[owner].to_pylist()
    return [[vocab[i - 2] for i in row if i >= 2] for row in store.split(split).sequences[index]
            .tolist()]


def test_history_only_events_enter_later_rows_histories(tmp_path: Path) -> None:
    """By hand: a (u1's first item, at 1) is in every u1 history; z (log, at 5) is not in e's
    (a row at 5) but is in g's, before e (at one time the log's events come first); negatives
    (n1, f) are in none (events: positive); the newest 3 are kept. The log's items are no
    rows."""
    assert prepare(tmp_path, ROWS, "--ratios", "1", "0", "0") == 0
    store = EncodedStore.open(tmp_path / "store")
    assert store.meta["splits"]["train"]["rows"] == 6
    assert decoded(store, "train") == [["a"], ["a"], ["b"], ["a", "c"], ["b", "d"],
                                       ["c", "z", "e"]]
    assert decoded(store, "train", "hist_cat") == [["x"], ["x"], ["y"], ["x", "x"],
                                                   ["y", "y"], ["x", "x", "x"]]
    assert [f["bytes"] for f in store.meta["history_log"]] == [(tmp_path / "log.csv")
                                                                .stat().st_size]
    # the same inputs and log: reused; another log: refused, naming the setting
    assert prepare(tmp_path, ROWS, "--ratios", "1", "0", "0") == 0
    assert prepare(tmp_path, ROWS, "--ratios", "1", "0", "0", log=LOG[:-1]) == 2
    # without the log the first items are missing from the histories
    assert prepare(tmp_path, ROWS, "--ratios", "1", "0", "0", log=None, out="bare") == 0
    assert decoded(EncodedStore.open(tmp_path / "bare"), "train") == [
        [], [], [], ["c"], ["d"], ["c", "e"]]


@pytest.mark.parametrize(("log", "rows", "file", "line"), [
    (["user,time,item,cat", "u1,1,a,x", "u1,5,z,x", "u2,2,b,y"], ROWS, "log.csv", 4),
    (LOG, ["u1,3,c,x,1", "u2,4,d,y,1", "u1,3,n1,y,0"], "rows.csv", 4),
])
def test_a_log_or_rows_out_of_time_order_names_file_line_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log: list[str], rows: list[str],
    file: str, line: int,
) -> None:
    """Merged by time, both streams must be sorted by time (not just per user: u2's event at
    2 after u1's at 5 is refused); skipped, the bad row is counted."""
    assert prepare(tmp_path, rows, log=log) == 2
    error = capsys.readouterr().err
    assert f"file {tmp_path / file}, line {line}, field 'time': earlier than" in error
    assert "sort the" in error
    assert prepare(tmp_path, rows, "--on-bad-row", "skip", "--ratios", "1", "0", "0",
                   log=log) == 0
    assert EncodedStore.open(tmp_path / "store").meta["skipped"]["rows"] == 1


def test_events_must_be_chosen_when_the_labels_hold_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """No default puts sampled negatives into histories: unset ``events`` with labels 0 and 1
    is an error naming the key, both choices and where each label was first seen; a log of
    one label needs no choice (its rows are its events)."""
    assert prepare(tmp_path, ROWS, log=None, events=None) == 2
    error = capsys.readouterr().err
    assert "schema key history.events is not set" in error
    assert f"1 ({tmp_path / 'rows.csv'} line 2) and 0 ({tmp_path / 'rows.csv'} line 3)" in error
    assert "set events: positive" in error and "or events: all" in error
    clicks = [row for row in ROWS if row.endswith(",1")]
    assert prepare(tmp_path, clicks, "--ratios", "1", "0", "0", log=None, events=None) == 0
    store = EncodedStore.open(tmp_path / "store")
    assert decoded(store, "train") == [[], [], ["c"], ["c", "e"]]
    assert store.meta["settings"]["tabular"]["history"]["events"] is None


def test_user_last_split_on_the_hand_log(tmp_path: Path) -> None:
    """u1's times 3, 5, 7 -> train, valid, test (both rows at 3 in train); u2's 4, 6 -> valid,
    test. ``--user-last 2``: u1's last two times (5, 7) and both of u2's to test, u1's time
    before them (3, two rows) to valid, nothing to train."""
    assert prepare(tmp_path, ROWS, "--split", "user-last") == 0
    store = EncodedStore.open(tmp_path / "store")
    assert [store.meta["splits"][s]["rows"] for s in ("train", "valid", "test")] == [2, 2, 2]
    assert store.meta["settings"]["split"] == {
        "method": "user-last", "ratios": [0.8, 0.1, 0.1], "seed": 0, "time_column": "time",
        "user_column": "user", "user_last": 1}
    assert prepare(tmp_path, ROWS, "--split", "user-last", "--user-last", "2", out="two") == 0
    two = EncodedStore.open(tmp_path / "two")
    assert [two.meta["splits"][s]["rows"] for s in ("train", "valid", "test")] == [0, 2, 4]


def test_the_python_api_prepares_the_commands_store(tmp_path: Path) -> None:
    """``mutualctr.prepare`` with a history log and the user-last split: the same store (its
    settings, arrays and histories) as the command's."""
    import mutualctr

    assert prepare(tmp_path, ROWS, "--split", "user-last", "--user-last", "2") == 0
    command = EncodedStore.open(tmp_path / "store")
    api = mutualctr.prepare(tmp_path / "rows.csv", tmp_path / "api", format="csv",
                            schema=tmp_path / "schema.yaml", split="user-last", user_last=2,
                            history_log=tmp_path / "log.csv")
    assert api.meta["settings"] == command.meta["settings"]
    for split in ("train", "valid", "test"):
        assert decoded(api, split) == decoded(command, split)
        np.testing.assert_array_equal(api.split(split).categorical,
                                      command.split(split).categorical)


def test_data_info_prints_each_history_field_file_and_lengths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Lengths by hand. Without the log, all rows in train: 0, 0, 0, 1, 1, 2 -> min 0, median
    0.5, p90 1.5 (h = 5 * 0.9 = 4.5, between 1 and 2), max 2, 3 of 6 empty. With it, split by
    user: train (u1 at 3) 1, 1; valid (u2 at 4, u1 at 5) 1, 2; test (u2 at 6, u1 at 7) 2, 3."""
    assert prepare(tmp_path, ROWS, "--ratios", "1", "0", "0", log=None, out="bare") == 0
    assert prepare(tmp_path, ROWS, "--split", "user-last") == 0
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path / "bare")]) == 0
    bare = capsys.readouterr().out.splitlines()
    assert "histories (events: positive; length = events in a row's history):" in bare
    assert ("  hist_item  train/seq_0.npy  length min 0, median 0.5, p90 1.5, max 2; empty "
            "50.0% of 6 rows") in bare
    assert ("  hist_cat  train/seq_1.npy  length min 0, median 0.5, p90 1.5, max 2; empty "
            "50.0% of 6 rows") in bare
    assert main(["data", "info", str(tmp_path / "store")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if "hist_item  " in line and ".npy" in line]
    assert lines == [
        "  hist_item  train/seq_0.npy  length min 1, median 1, p90 1, max 1; empty 0.0% of 2 "
        "rows",
        "  hist_item  valid/seq_0.npy  length min 1, median 1.5, p90 1.9, max 2; empty 0.0% of "
        "2 rows",
        "  hist_item  test/seq_0.npy  length min 2, median 2.5, p90 2.9, max 3; empty 0.0% of "
        "2 rows",
    ]
    stored = np.load(tmp_path / "store" / "test" / "seq_0.npy")  # the file the line names
    assert (stored > 0).sum(axis=1).tolist() == [2, 3]


def test_quantiles_from_counts_are_numpys() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.integers(0, 12, int(rng.integers(1, 40)))
        for q in (0.0, 0.5, 0.9, 1.0):
            assert quantile(np.bincount(values), q) == pytest.approx(np.quantile(values, q))


def random_chunks(rng: np.random.Generator, mask: np.ndarray, users: np.ndarray,
                  items: np.ndarray, labels: np.ndarray, times: np.ndarray) -> list[ParsedChunk]:
    """The rows where ``mask`` is true, cut into 4 chunks at random places (some empty); a
    row's line is its index + 2."""
    where = np.flatnonzero(mask)
    cuts = [0, *np.sort(rng.integers(0, len(where) + 1, 3)).tolist(), len(where)]
    return [ParsedChunk({"user": pa.array([str(u) for u in users[part]]),
                         "item": pa.array(items[part])}, labels[part], part + 2, pa.table({}),
                        times[part])
            for a, b in itertools.pairwise(cuts) for part in [where[a:b]]]


def test_merged_log_against_a_brute_force_oracle_whatever_the_chunking() -> None:
    """Random time-sorted rows and log, each cut into random chunks: every row's history is the
    newest max_len of its user's events strictly before it, log events and the rows' own
    (positive ones, or all), at one time the log's first, each in input order."""
    rng = np.random.default_rng(3)
    for _ in range(150):
        n, max_len = int(rng.integers(1, 50)), int(rng.integers(1, 5))
        events = "positive" if rng.random() < 0.5 else "all"
        times = np.cumsum(rng.integers(0, 3, n)).astype(float)
        users = rng.integers(0, 4, n)
        items = np.array([f"i{k}" for k in range(n)])
        in_log = rng.random(n) < 0.4
        labels = rng.integers(0, 2, n).astype(np.float32)
        log_labelled = rng.random() < 0.5
        if not log_labelled:
            labels[in_log] = np.nan

        columns = (users, items, labels, times)
        log = [(Path("log.csv"), chunk) for chunk in random_chunks(rng, in_log, *columns)]
        builder = HistoryBuilder(HistorySpec("user", "time", ("item",), max_len, events),
                                 Path("rows.csv"), BadRows("error"), log=log)
        got = {}
        for chunk in random_chunks(rng, ~in_log, *columns):
            assert chunk.time is not None
            built = builder.add(chunk, chunk.columns["user"], chunk.time)
            got.update(zip((built.lines - 2).tolist(), built.columns["hist_item"].to_pylist(),
                           strict=True))
        is_event = (np.ones(n, bool) if events == "all"
                    else (labels > 0) | (in_log & ~log_labelled))
        for r in np.flatnonzero(~in_log):
            earlier = [e for e in range(n) if users[e] == users[r] and times[e] < times[r]
                       and is_event[e]]
            earlier.sort(key=lambda e: (times[e], not in_log[e], e))
            assert got[r] == [items[e] for e in earlier][-max_len:]


@dataclass
class DinLog:
    """A DIN-style log built from MovieLens: rows and history-only events, in time order."""

    rows: list[tuple[str, int, str, int]]  # user, time, item, click
    log: list[tuple[str, int, str]]  # user, time, item: each user's first movie
    events: dict[str, list[tuple[int, str]]]  # per user, its movies (time, item) in order


def din_log(users: int, seed: int = 0) -> DinLog:
    """The first ``users`` users of latest-small; each user's ratings ordered by (timestamp,
    file order); the first one a history-only event, each next one a positive row and a
    negative row (a movie the user never rated, drawn from all rated movies) at its time."""
    ratings = pa_csv.read_csv(MOVIELENS / "ratings.csv.gz", convert_options=pa_csv.ConvertOptions(
        column_types={"userId": pa.string(), "movieId": pa.string()}))
    user = ratings["userId"].to_numpy(zero_copy_only=False)
    item = ratings["movieId"].to_numpy(zero_copy_only=False)
    time = ratings["timestamp"].to_numpy()
    catalogue = np.unique(item)
    rng = np.random.default_rng(seed)
    rows, log, events = [], [], {}
    for u in list(dict.fromkeys(user))[:users]:
        mine = np.flatnonzero(user == u)
        mine = mine[np.lexsort((mine, time[mine]))]
        events[u] = [(int(time[k]), str(item[k])) for k in mine]
        touched = set(item[mine])
        log.append((u, *events[u][0]))
        for t, i in events[u][1:]:
            negative = str(rng.choice(catalogue))
            while negative in touched:
                negative = str(rng.choice(catalogue))
            rows += [(u, t, i, 1), (u, t, negative, 0)]
    rows.sort(key=lambda r: r[1])  # stable: each user's rows keep their order
    log.sort(key=lambda e: e[1])
    return DinLog(rows, log, events)


def test_din_log_with_user_last_split_has_no_leakage(tmp_path: Path) -> None:
    """The DIN recipe on 20 MovieLens users: ``--split user-last`` with the first movies as a
    history log. Every row of every split has exactly the oracle's split and history (the
    user's movies strictly before the row, first movie included, newest 10; negatives never);
    each user's rows at its last time are in test and at the time before in valid; decoded, no
    test row's history holds its own movie or anything at or after its time."""
    din = din_log(20)
    rows_path = write_lines(tmp_path / "rows.csv", ["user,time,item,click"] + [
        f"{u},{t},{i},{c}" for u, t, i, c in din.rows])
    log_path = write_lines(tmp_path / "log.csv", ["user,time,item"] + [
        f"{u},{t},{i}" for u, t, i in din.log])
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump({
        "label": "click", "fields": [{"name": "user", "type": "categorical"},
                                     {"name": "item", "type": "categorical"}],
        "history": {"user": "user", "time": "time", "columns": ["item"], "max_len": 10,
                    "events": "positive"}}))
    assert main(["data", "prepare", str(rows_path), "--format", "csv", "--schema", str(schema),
                 "--history-log", str(log_path), "--split", "user-last",
                 "--out", str(tmp_path / "store")]) == 0
    store = EncodedStore.open(tmp_path / "store")

    def expected_split(u: str, t: int) -> int:
        times = sorted({time for time, _ in din.events[u][1:]})
        return 2 if t == times[-1] else 1 if len(times) > 1 and t == times[-2] else 0

    def history(u: str, t: int) -> list[str]:
        return [i for time, i in din.events[u] if time < t][-10:]

    which = np.array([expected_split(u, t) for u, t, _, _ in din.rows])
    item_ids = {v: k + 2 for k, v in enumerate(store.encoder.vocabs["item"].to_pylist())}
    user_ids = {v: k + 2 for k, v in enumerate(store.encoder.vocabs["user"].to_pylist())}
    for k, name in enumerate(("train", "valid", "test")):
        mine = [din.rows[r] for r in np.flatnonzero(which == k)]
        split = store.split(name)
        assert len(split) == len(mine) > 0
        np.testing.assert_array_equal(split.categorical, [
            [user_ids.get(u, 1), item_ids.get(i, 1)] for u, _, i, _ in mine])
        np.testing.assert_array_equal(split.label, [c for *_, c in mine])
        histories = [[item_ids.get(i, 1) for i in history(u, t)] for u, t, _, _ in mine]
        np.testing.assert_array_equal(split.sequences[0],
                                      [h + [0] * (10 - len(h)) for h in histories])
    test_rows = [din.rows[r] for r in np.flatnonzero(which == 2)]
    assert {u for u, *_ in test_rows} == set(din.events)  # every user's last time is in test
    when = {(u, i): t for u, rated in din.events.items() for t, i in rated}
    for (u, t, i, click), seen in zip(test_rows, decoded(store, "test"), strict=True):
        assert all(when[u, h] < t for h in seen)
        assert click == 0 or i not in seen


def test_movielens_user_last_split(tmp_path: Path) -> None:
    """MovieLens gives users and timestamps: each user's ratings at its last timestamp are the
    test split, those at the timestamp before the valid split (counted from the raw file),
    with the histories --history-len builds over the whole file."""
    ratings = pa_csv.read_csv(MOVIELENS / "ratings.csv.gz")
    user, time = ratings["userId"].to_numpy(), ratings["timestamp"].to_numpy()
    expected = np.zeros(3, dtype=np.int64)
    for u in np.unique(user):
        times = time[user == u]
        distinct = np.unique(times)
        expected[2] += np.count_nonzero(times == distinct[-1])
        expected[1] += np.count_nonzero(times == distinct[-2])
    expected[0] = len(user) - expected[1:].sum()
    assert main(["data", "prepare", str(MOVIELENS), "--format", "movielens", "--history-len",
                 "5", "--split", "user-last", "--out", str(tmp_path / "store")]) == 0
    store = EncodedStore.open(tmp_path / "store")
    assert [store.meta["splits"][s]["rows"] for s in ("train", "valid", "test")] == (
        expected.tolist())
    assert len(np.unique(store.split("test").categorical[:, 0])) == len(np.unique(user))
    assert (store.split("test").sequences[1] > 0).sum(axis=1).min() == 5  # hist_item: full
