"""Behaviour sequences in the data pipeline: histories built from a log (no leakage, ties,
truncation, order errors), shared vocabularies, Parquet list columns, MovieLens histories on
the real data and the synthetic sequence benchmark."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from data_files import build, write_lines
from mutualctr.cli import main
from mutualctr.data.prepare import SplitOptions
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.base import BadRows, ParsedChunk
from mutualctr.data.readers.history import HistoryBuilder, HistorySpec
from mutualctr.data.readers.movielens import load_genres, movies_file, rarest_genres
from mutualctr.data.readers.tabular import TabularReader, load_spec
from mutualctr.data.schema import FieldSpec, Schema
from mutualctr.data.store import EncodedStore
from mutualctr.data.synthetic_sequences import (
    A_HISTORY,
    draw_sequence_log,
    generate_sequence_log,
)
from mutualctr.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MOVIELENS = SHARED_DATA / "movielens_latest_small"
# user, time, item, cat, click: u1 has two rows at t=20 and two at t=30 (ties), u2 interleaves
LOG = [
    "u1,10,a,x,1",
    "u2,10,b,y,0",
    "u1,20,c,x,0",
    "u1,20,d,y,1",
    "u1,30,e,x,1",
    "u2,15,a,x,1",
    "u1,30,f,y,0",
]


def write_log(folder: Path, rows: list[str], max_len: int = 3, events: str = "all") -> Path:
    """The log as a CSV plus its schema (``user`` and ``time`` are not fields)."""
    folder.mkdir(exist_ok=True)
    write_lines(folder / "log.csv", ["user,time,item,cat,click", *rows])
    schema = {
        "label": "click",
        "fields": [{"name": "item", "type": "categorical"}, {"name": "cat", "type": "categorical"}],
        "history": {"user": "user", "time": "time", "columns": ["item", "cat"],
                    "max_len": max_len, "events": events},
    }
    (folder / "schema.yaml").write_text(yaml.safe_dump(schema))
    return folder / "log.csv"


def build_log(tmp_path: Path, rows: list[str], **history: object) -> EncodedStore:
    path = write_log(tmp_path / "raw", rows, **history)  # type: ignore[arg-type]
    return build(tmp_path, "csv", [path], tabular=load_spec(tmp_path / "raw" / "schema.yaml"))


def sequence(store: EncodedStore, name: str, split: str = "train") -> np.ndarray:
    index = [f.name for f in store.feature_map.sequence].index(name)
    return np.asarray(store.split(split).sequences[index])


def decoded(store: EncodedStore, name: str, split: str = "train") -> list[list[str]]:
    """A sequence field's rows as raw values (padding dropped); ids >= 2 only."""
    spec = next(f for f in store.encoder.schema.fields if f.name == name)
    vocab = store.encoder.vocabs[spec.share_vocab or name].to_pylist()
    return [[vocab[i - 2] for i in row if i] for row in sequence(store, name, split).tolist()]


@pytest.mark.parametrize(("events", "expected"), [
    ("all", [[], [], ["a"], ["a"], ["a", "c", "d"], ["b"], ["a", "c", "d"]]),
    ("positive", [[], [], ["a"], ["a"], ["a", "d"], [], ["a", "d"]]),
])
def test_history_holds_only_strictly_earlier_rows(
    tmp_path: Path, events: str, expected: list[list[str]],
) -> None:
    """Rows at the same time never see each other: u1's two rows at t=20 both see only a, its
    two rows at t=30 both see a, c, d and neither sees e (a row at t=30 itself)."""
    store = build_log(tmp_path, LOG, events=events)
    assert decoded(store, "hist_item") == expected
    categories = {"a": "x", "b": "y", "c": "x", "d": "y"}  # the same events, position by position
    assert decoded(store, "hist_cat") == [[categories[i] for i in row] for row in expected]


def test_truncation_keeps_the_newest_and_a_first_row_is_all_padding(tmp_path: Path) -> None:
    rows = [f"u1,{t},i{t},x,1" for t in range(1, 7)]
    store = build_log(tmp_path, rows, max_len=2)
    assert decoded(store, "hist_item") == [[], ["i1"], ["i1", "i2"], ["i2", "i3"], ["i3", "i4"],
                                           ["i4", "i5"]]
    ids = sequence(store, "hist_item")
    assert ids.shape == (6, 2)
    np.testing.assert_array_equal(ids[0], [0, 0])  # padding, not the missing token
    assert (ids[1:, 0] >= 2).all() and ids[1, 1] == 0  # padded on the right
    encoded, _ = store.encode_file(tmp_path / "raw" / "log.csv")  # as predict reads a file
    np.testing.assert_array_equal(encoded.sequences[0], ids)


def test_no_leakage_against_a_brute_force_oracle_whatever_the_chunking() -> None:
    """Random logs (many ties, a few users) cut into random chunks: every row's history is the
    newest max_len of its user's events strictly before it, oldest first."""
    rng = np.random.default_rng(5)
    for _ in range(150):
        n, max_len = int(rng.integers(1, 60)), int(rng.integers(1, 5))
        events = "positive" if rng.random() < 0.5 else "all"
        users = rng.integers(0, 5, n)
        times = np.zeros(n)
        for u in range(5):
            mine = users == u
            times[mine] = np.cumsum(rng.integers(0, 3, mine.sum()))  # per user in time order
        items = [f"i{k}" for k in rng.integers(0, 8, n)]
        labels = rng.integers(0, 2, n).astype(np.float32)
        builder = HistoryBuilder(HistorySpec("user", "time", ("item",), max_len, events),
                                 Path("log.csv"), BadRows("error"))
        cuts = [0, *np.sort(rng.integers(0, n + 1, 3)).tolist(), n]
        got = []
        for a, b in itertools.pairwise(cuts):
            chunk = ParsedChunk({"item": pa.array(items[a:b])}, labels[a:b],
                                np.arange(a, b) + 2, pa.table({}))
            users_ab = pa.array([str(u) for u in users[a:b]])
            got += builder.add(chunk, users_ab, times[a:b]).columns["hist_item"].to_pylist()
        for r in range(n):
            earlier = [e for e in range(n) if users[e] == users[r] and times[e] < times[r]
                       and (events == "all" or labels[e] > 0)]
            earlier.sort(key=lambda e: (times[e], e))
            assert got[r] == [items[e] for e in earlier][-max_len:]


def test_a_log_in_several_files_carries_each_users_history_into_the_next(
    tmp_path: Path,
) -> None:
    """LOG cut into two files (u1 and u2 each have rows in both) gives the one-file histories;
    a second file going back in time for a user is a bad row of that file."""
    one_file = build_log(tmp_path, LOG)
    spec = load_spec(tmp_path / "raw" / "schema.yaml")
    first, second = tmp_path / "day1.csv", tmp_path / "day2.csv"
    write_lines(first, ["user,time,item,cat,click", *LOG[:3]])
    write_lines(second, ["user,time,item,cat,click", *LOG[3:]])
    two_files = build(tmp_path, "csv", [first, second], tabular=spec, out="two")
    assert decoded(two_files, "hist_item") == decoded(one_file, "hist_item")
    assert decoded(two_files, "hist_item")[3:] == [["a"], ["a", "c", "d"], ["b"], ["a", "c", "d"]]

    write_lines(second, ["user,time,item,cat,click", "u2,12,b,y,0", "u1,5,a,x,1"])
    with pytest.raises(DataError, match="give its files in time order") as info:
        build(tmp_path, "csv", [first, second], tabular=spec, out="bad")
    assert (info.value.file, info.value.line, info.value.field) == (str(second), 3, "time")


def test_time_going_back_for_a_user_names_file_line_and_field(tmp_path: Path) -> None:
    rows = ["u1,10,a,x,1", "u2,5,b,y,0", "u1,30,c,x,1", "u1,20,d,y,1", "u2,6,e,x,0"]
    path = write_log(tmp_path / "raw", rows)
    spec = load_spec(tmp_path / "raw" / "schema.yaml")
    with pytest.raises(DataError, match="earlier than a previous row of the same user") as info:
        build(tmp_path, "csv", [path], tabular=spec)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 5, "time")
    assert "got 20.0" in str(info.value)

    reader = TabularReader(spec, parquet=False)
    bad_rows = BadRows("skip")
    kept = [c for c in reader.read(path, bad_rows)]
    assert [line for c in kept for line in c.lines.tolist()] == [2, 3, 4, 6]
    assert kept[0].columns["hist_item"].to_pylist() == [[], [], ["a"], ["b"]]
    assert bad_rows.count == 1 and bad_rows.examples[0]["line"] == 5


def test_movielens_user_split_over_the_file_going_back_in_time_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    write_lines(folder / "movies.csv", ["movieId,title,genres", "1,A,Drama", "2,B,Comedy"])
    write_lines(folder / "ratings.csv", ["userId,movieId,rating,timestamp", "1,1,4.0,300",
                                         "1,2,3.0,100", "2,1,5.0,50", "1,1,2.0,200"])
    with pytest.raises(DataError, match="ratings must be together") as info:
        build(tmp_path, "movielens", [folder], history_len=2)
    assert (info.value.line, info.value.field) == (5, "timestamp")


def test_shared_vocabulary_is_fitted_on_both_columns(tmp_path: Path) -> None:
    """One vocabulary for item and tags (tags share_vocab item): counts summed over both
    columns, the owner's min_count, equal raw values get equal ids in both."""
    path = write_lines(tmp_path / "t.csv", ["y,item,tags", "1,a,b|c", "0,b,b", "1,c,d|a|a",
                                            "0,e,"])
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"label": "y", "fields": [
        {"name": "item", "type": "categorical", "min_count": 2},
        {"name": "tags", "type": "sequence", "share_vocab": "item", "max_len": 3,
         "min_count": 5}]}))
    store = build(tmp_path, "csv", [path], tabular=load_spec(schema))
    # counts over both: a 3, b 3, c 2, d 1, e 1, "" 1 -> a 2, b 3, c 4; d, e OOV (min_count 2
    # of the owner, not the sharer's 5); the missing token "" kept whatever its count -> 5
    assert store.encoder.vocabs["item"].to_pylist() == ["a", "b", "c", ""]
    assert "tags" not in store.encoder.vocabs
    assert store.split("train").categorical[:, 0].tolist() == [2, 3, 4, 1]
    assert sequence(store, "tags").tolist() == [[3, 4, 0], [3, 0, 0], [1, 2, 2], [5, 0, 0]]
    item, tags = store.feature_map.features
    assert (item.vocab_size, tags.vocab_size) == (6, 6)
    assert (item.share_with, tags.share_with) == ("", "item")
    reopened = EncodedStore.open(store.root)  # the encoder round-trips through JSON
    encoded, _ = reopened.encode_file(path)
    np.testing.assert_array_equal(encoded.sequences[0], sequence(store, "tags"))


@pytest.mark.parametrize(("fields", "message"), [
    ([FieldSpec("a", "categorical", share_vocab="zz")], "'zz' is not a field"),
    ([FieldSpec("x", "numeric"), FieldSpec("a", "categorical", share_vocab="x")], "numeric"),
    ([FieldSpec("a", "categorical"), FieldSpec("b", "sequence", share_vocab="a"),
      FieldSpec("c", "sequence", share_vocab="b")], "name that one"),
    ([FieldSpec("a", "categorical"), FieldSpec("a", "numeric")], "repeated: a"),
])
def test_schema_refuses_bad_sharing(fields: list[FieldSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schema(tuple(fields), "y")
    with pytest.raises(ValueError, match="the field itself"):
        FieldSpec("a", "categorical", share_vocab="a")


def test_schema_file_errors_for_history(tmp_path: Path) -> None:
    base = {"label": "y", "fields": [{"name": "item", "type": "categorical"},
                                     {"name": "price", "type": "numeric"}]}
    cases = [
        ({"user": "u", "time": "t", "columns": ["price"]}, "'price' must be a categorical"),
        ({"user": "u", "time": "t", "columns": ["item"], "max_len": 0}, "max_len must be >= 1"),
        ({"user": "u", "time": "t", "columns": []}, "'columns' is empty"),
        ({"user": "u", "time": "t", "columns": ["item"], "events": "clicks"}, "must be one of"),
        ({"user": "u", "time": "t", "colums": ["item"]}, "did you mean 'columns'"),
    ]
    for history, message in cases:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({**base, "history": history}))
        with pytest.raises(ConfigError, match=message):
            load_spec(path)
    clash = {"label": "y", "fields": [{"name": "item", "type": "categorical"},
                                      {"name": "hist_item", "type": "categorical"}],
             "history": {"user": "u", "time": "t", "columns": ["item"]}}
    path.write_text(yaml.safe_dump(clash))
    with pytest.raises(ConfigError, match="repeated: hist_item"):
        load_spec(path)


def test_stores_without_sequences_record_the_same_settings_as_before(tmp_path: Path) -> None:
    """No history or share_vocab key where none is used, so stores built before these options
    existed are still reused."""
    path = write_lines(tmp_path / "t.csv", ["y,item", "1,a"])
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"label": "y", "fields": [{"name": "item",
                                                                  "type": "categorical"}]}))
    settings = ReaderOptions(tabular=load_spec(schema)).settings("csv")
    assert settings["tabular"] == {"label": "y", "delimiter": ",", "fields": [
        {"name": "item", "type": "categorical", "min_count": 1, "separator": "|", "max_len": 0}],
        "label_values": {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}}
    assert "history_len" not in ReaderOptions().settings("movielens")
    store = build(tmp_path, "csv", [path], tabular=load_spec(schema))
    assert "share_vocab" not in store.meta["settings"]["schema"]["fields"][0]


def test_min_count_option_keeps_the_sharing(tmp_path: Path) -> None:
    path = write_log(tmp_path / "raw", LOG)
    store = build(tmp_path, "csv", [path], tabular=load_spec(tmp_path / "raw" / "schema.yaml"),
                  min_count=2)
    shares = {f.name: f.share_with for f in store.feature_map.features}
    assert shares == {"item": "", "cat": "", "hist_item": "item", "hist_cat": "cat"}


def test_parquet_list_columns_are_sequences(tmp_path: Path) -> None:
    """list<string> and list<int64> columns: the lists are the tokens; a missing list is the
    missing token, an empty list all padding, a missing element the missing token."""
    table = pa.table({
        "y": pa.array([1, 0, 1, 0]),
        "tags": pa.array([["a", "b"], None, [], ["b", None]], pa.list_(pa.string())),
        "codes": pa.array([[7, 7, 8], [8], [], None], pa.large_list(pa.int64())),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"label": "y", "fields": [
        {"name": "tags", "type": "sequence", "max_len": 2},
        {"name": "codes", "type": "sequence"}]}))
    store = build(tmp_path, "parquet", [tmp_path / "t.parquet"], tabular=load_spec(schema))
    # tags: "" 2 (missing list, missing element), b 2, a 1 -> "" 2, b 3, a 4 (ties by value)
    assert sequence(store, "tags").tolist() == [[4, 3], [2, 0], [0, 0], [3, 2]]
    # codes: 7 2, 8 2, "" 1 -> 7 2, 8 3, "" 4; longest list in train: 3
    assert sequence(store, "codes").tolist() == [[2, 2, 3], [3, 0, 0], [0, 0, 0], [4, 0, 0]]

    bad = pa.table({"y": pa.array([1]), "tags": pa.array([[{"k": 1}]]), "codes": [[1]]})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="list of values that cast to text") as info:
        build(tmp_path, "parquet", [tmp_path / "bad.parquet"], tabular=load_spec(schema),
              out="bad")
    assert info.value.field == "tags"


def test_parquet_log_with_histories(tmp_path: Path) -> None:
    columns = list(zip(*(row.split(",") for row in LOG), strict=True))
    table = pa.table({"user": columns[0], "time": pa.array([int(t) for t in columns[1]]),
                      "item": columns[2], "cat": columns[3],
                      "click": pa.array([int(c) for c in columns[4]])})
    write_log(tmp_path / "raw", LOG)
    pq.write_table(table, tmp_path / "log.parquet")
    store = build(tmp_path, "parquet", [tmp_path / "log.parquet"],
                  tabular=load_spec(tmp_path / "raw" / "schema.yaml"))
    assert decoded(store, "hist_item") == [[], [], ["a"], ["a"], ["a", "c", "d"], ["b"],
                                           ["a", "c", "d"]]


def movielens_oracle(max_len: int) -> tuple[list[list[str]], list[str], dict[str, str]]:
    """Every rating's history from the raw files by brute force (per user: ratings strictly
    earlier, by (timestamp, file order), newest max_len), each row's movie and the movies'
    rarest genres."""
    ratings = pa_csv.read_csv(MOVIELENS / "ratings.csv.gz", convert_options=pa_csv.ConvertOptions(
        column_types={"userId": pa.string(), "movieId": pa.string()}))
    users = ratings["userId"].to_numpy(zero_copy_only=False)
    items = ratings["movieId"].to_numpy(zero_copy_only=False)
    times = ratings["timestamp"].to_numpy()
    histories: list[list[str]] = [[] for _ in range(len(users))]
    for user in np.unique(users):
        rows = np.flatnonzero(users == user)
        rows = rows[np.lexsort((rows, times[rows]))]
        ends = np.searchsorted(times[rows], times[rows], side="left")  # first at the same time
        ordered = items[rows].tolist()
        for row, end in zip(rows, ends, strict=True):
            histories[row] = ordered[max(0, end - max_len):end]
    movie_ids, genres = load_genres(movies_file(MOVIELENS / "ratings.csv.gz"))
    rarest = dict(zip(movie_ids.to_pylist(), rarest_genres(genres).to_pylist(), strict=True))
    return histories, items.tolist(), rarest


def test_movielens_histories_on_the_real_data(tmp_path: Path) -> None:
    """Every one of the 100,836 ratings (sorted by user, then movie, in the file) gets the
    user's 20 newest strictly earlier ratings, with their movies' genres position by position;
    rows stay in file order."""
    store = build(tmp_path, "movielens", [MOVIELENS], history_len=20)
    features = {f.name: f for f in store.feature_map.features}
    assert [f.name for f in store.feature_map.features] == [
        "user", "item", "genres", "hour", "weekday", "genre", "hist_item", "hist_genre"]
    assert (features["hist_item"].share_with, features["hist_item"].max_len) == ("item", 20)
    assert features["hist_genre"].share_with == "genre"
    assert features["hist_item"].vocab_size == features["item"].vocab_size
    assert store.meta["settings"]["history_len"] == 20

    expected, items, rarest = movielens_oracle(20)
    assert decoded(store, "hist_item") == expected
    assert decoded(store, "hist_genre") == [[rarest[i] for i in row] for row in expected]
    item_vocab = store.encoder.vocabs["item"].to_pylist()
    assert [item_vocab[i - 2] for i in store.split("train").categorical[:, 1]] == items
    lengths = (sequence(store, "hist_item") > 0).sum(axis=1)
    assert (lengths == 0).sum() == 1159  # the 610 users' ratings at their first timestamp
    assert (lengths == 20).mean() > 0.8
    assert rarest["1"] == "Animation"  # Toy Story: Adventure|Animation|Children|Comedy|Fantasy


def test_movielens_without_history_is_unchanged(tmp_path: Path) -> None:
    store = build(tmp_path, "movielens", [MOVIELENS], split=SplitOptions(seed=0))
    assert [f.name for f in store.feature_map.features] == ["user", "item", "genres", "hour",
                                                            "weekday"]
    assert "history_len" not in store.meta["settings"]
    with pytest.raises(ConfigError, match="MovieLens option"):
        build(tmp_path, "criteo", [MOVIELENS], history_len=5, out="x")


def test_synthetic_log_shape_and_informative_probabilities(tmp_path: Path) -> None:
    out, probs = tmp_path / "seq.csv", tmp_path / "seq.probs"
    schema = generate_sequence_log(out, 30_000, seed=2, probs_out=probs, history_len=30)
    table = pa_csv.read_csv(out)
    assert table.num_rows == 30_000 and table.column_names == [
        "time", "user", "item", "category", "user_group", "hour", "position", "price",
        "log_gap", "click"]
    times = table["time"].to_numpy()
    assert (np.diff(times) >= 0).all()  # a log in time order
    labels = table["click"].to_numpy()
    p = np.loadtxt(probs)
    assert p.shape == (30_000,) and 0.15 < labels.mean() < 0.35
    assert abs(p.mean() - labels.mean()) < 0.02
    assert roc_auc_score(labels, p) > 0.7
    assert load_spec(schema).history == HistorySpec("user", "time", ("item", "category"), 30,
                                                    "positive")
    first = pc.is_null(table["log_gap"]).to_numpy(zero_copy_only=False)
    assert first.sum() == len(np.unique(table["user"].to_numpy()))  # one first row per user


def test_synthetic_probabilities_depend_on_the_history_the_store_holds(tmp_path: Path) -> None:
    """The generator's history term, recomputed from the histories the csv reader builds from
    the written log, is the same number: the store's hist_item holds exactly what the hidden
    model looks at. Permuting the histories across rows changes the probabilities and loses
    AUC."""
    truth, log = draw_sequence_log(20_000, seed=4, history_len=25)
    out = tmp_path / "seq.csv"
    reader = TabularReader(load_spec(generate_sequence_log(out, 20_000, 4, history_len=25)),
                           parquet=False)
    histories = [h for c in reader.read(out, BadRows("error"))
                 for h in c.columns["hist_item"].to_pylist()]
    newest_first = np.full((len(log), 25), -1)
    for row, history in enumerate(histories):
        newest_first[row, :len(history)] = [int(i) for i in reversed(history)]
    term = truth.history_term(log.item, newest_first)
    np.testing.assert_allclose(term, log.history, atol=1e-12)
    assert (log.history != 0).mean() > 0.9

    shuffled = truth.history_term(log.item, newest_first[np.random.default_rng(0).permutation(
        len(log))])
    logit = log.logit + A_HISTORY * (shuffled - log.history)
    prob = 1.0 / (1.0 + np.exp(-logit))
    assert np.abs(prob - log.prob).mean() > 0.03
    assert roc_auc_score(log.label, log.prob) > roc_auc_score(log.label, prob) + 0.02


def test_synthetic_log_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate_sequence_log(tmp_path / f"{name}.csv", 2_000, seed=9,
                              probs_out=tmp_path / f"{name}.probs")
    generate_sequence_log(tmp_path / "c.csv", 2_000, seed=10)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.probs").read_bytes() == (tmp_path / "b.probs").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    with pytest.raises(ConfigError, match="history-len"):
        generate_sequence_log(tmp_path / "d.csv", 10, seed=1, history_len=0)


def test_cli_synth_prepare_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, probs, store = tmp_path / "seq.csv", tmp_path / "seq.probs", tmp_path / "store"
    assert main(["data", "synth", "--sequences", "--rows", "20000", "--seed", "1",
                 "--history-len", "40", "--out", str(out), "--probs", str(probs)]) == 0
    printed = capsys.readouterr().out
    schema = tmp_path / "seq.schema.yaml"
    assert f"its schema to {schema}" in printed and "--split time --time-column time" in printed
    assert main(["data", "prepare", str(out), "--format", "csv", "--schema", str(schema),
                 "--probs", str(probs), "--split", "time", "--time-column", "time",
                 "--out", str(store)]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(store)]) == 0
    info = capsys.readouterr().out
    assert "max_len 40, ids of item" in info and "max_len 40, ids of category" in info
    aucs = [float(line.split("Bayes AUC")[1]) for line in info.splitlines() if "Bayes AUC" in line]
    assert len(aucs) == 3 and min(aucs) > 0.7
    opened = EncodedStore.open(store)
    assert opened.split("test").prob is not None
    # test rows (the last 10% of time) keep the histories their users built before
    assert (sequence(opened, "hist_item", "test") > 0).sum(axis=1).mean() > 20
    assert main(["data", "synth", "--sequences", "--regime", "criteo", "--rows", "10",
                 "--out", str(out)]) == 2
    assert "--regime is for the Criteo-format generator" in capsys.readouterr().err
