"""`mutualctr predict` on stores with behaviour histories: each scored row takes its user's
history from an event log (the store's own by default, ``--history-log``, ``--history-until``)
or from the input's history columns, as a serving system would; what it used is printed and
empty histories and unlabelled rows under ``events: positive`` are warned about.

Two tiny stores, each with a model trained for one epoch: MovieLens ratings of a few users
with ``--history-len`` (the DIN way: every rating an event) and DIN, and a synthetic sequence
log (``data synth --sequences``: clicks are the events) with DeepFM. Histories are checked
against a pandas oracle of the rule in ``data.readers.history`` (a row's user's events strictly
before its time, oldest first, the newest ``max_len``).
"""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mutualctr
from mutualctr.cli import main
from mutualctr.data.arrays import SplitArrays
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError
from mutualctr.serving.export import signature_path
from mutualctr.serving.histories import (
    HistorySource,
    HistoryWarning,
    store_history,
    store_log,
)

MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens_latest_small"
MOVIELENS_USERS = 12  # the first users of ratings.csv: about 1,900 ratings
MAX_LEN = 8
SYNTHETIC_ROWS = 2000
TRAINING = ["--epochs", "1", "--set", "train.batch_size=100",
            "--set", "model_config.embedding_dim=4"]


@dataclass(frozen=True)
class Trained:
    """A store, a run trained on it, its log as a frame, and where its files are."""

    log: pd.DataFrame  # the store's raw log, in file order
    user: str  # the log's user and time columns and its history's event column
    time: str
    item: str
    label: str
    store: EncodedStore
    run: Path
    folder: Path  # where inputs for the store's reader are written
    history_only: pd.DataFrame | None = None  # the store's history-only events (no labels)

    def events(self) -> pd.DataFrame:
        """The store's events, as its histories count them: its history-only events, then its
        rows' (clicks only under ``events: positive``)."""
        history = store_history(self.store.meta["settings"])
        assert history is not None
        rows = self.log[self.log[self.label] > 0] if history.events == "positive" else self.log
        return pd.concat([self.history_only, rows]) if self.history_only is not None else rows

    def test_rows(self) -> pd.DataFrame:
        """The store's test split as raw rows (``--split time``: the last rows by time, ties
        in file order), in file order."""
        order = np.argsort(self.log[self.time].to_numpy(), kind="stable")
        rows = self.store.meta["splits"]["test"]["rows"]
        return self.log.iloc[np.sort(order[-rows:])]

    def write(self, frame: pd.DataFrame, name: str) -> Path:
        path = self.folder / name
        frame.to_csv(path, index=False)
        return path

    def predict(self, frame: pd.DataFrame, name: str, *options: str) -> np.ndarray:
        out = self.folder / f"{name}.predictions.csv"
        assert main(["predict", str(self.run), "--input", str(self.write(frame, name)),
                     "--out", str(out), *options]) == 0
        return pd.read_csv(out)["prediction"].to_numpy()

    def run_predictions(self) -> np.ndarray:
        saved = np.load(self.run / "test_predictions.npz")
        return saved[next(k for k in saved.files if k.startswith("pred_"))]


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("movielens")
    folder = root / "ml"
    folder.mkdir()
    with gzip.open(MOVIELENS / "ratings.csv.gz", "rt") as handle:
        ratings = pd.read_csv(handle, dtype={"userId": str, "movieId": str})
    ratings = ratings[ratings.userId.isin(ratings.userId.unique()[:MOVIELENS_USERS])]
    ratings.to_csv(folder / "ratings.csv", index=False)
    shutil.copy(MOVIELENS / "movies.csv.gz", folder / "movies.csv.gz")
    store, run = root / "store", root / "run"
    assert main(["data", "prepare", str(folder / "ratings.csv"), "--format", "movielens",
                 "--history-len", str(MAX_LEN), "--split", "time", "--out", str(store)]) == 0
    assert main(["train", "--data", str(store), "--model", "din", "--out", str(run),
                 *TRAINING]) == 0
    return Trained(ratings.reset_index(drop=True), "userId", "timestamp", "movieId", "rating",
                   EncodedStore.open(store), run, folder)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("synthetic")
    log, store, run = root / "seq.csv", root / "store", root / "run"
    assert main(["data", "synth", "--sequences", "--rows", str(SYNTHETIC_ROWS), "--seed", "0",
                 "--history-len", "5", "--out", str(log)]) == 0
    assert main(["data", "prepare", str(log), "--format", "csv", "--schema",
                 str(root / "seq.schema.yaml"), "--split", "time", "--time-column", "time",
                 "--out", str(store)]) == 0
    assert main(["train", "--data", str(store), "--model", "deepfm", "--out", str(run),
                 "--set", "model_config.hidden_units=[8]", *TRAINING]) == 0
    frame = pd.read_csv(log, dtype={"user": str, "item": str, "category": str})
    return Trained(frame, "user", "time", "item", "click", EncodedStore.open(store), run, root)


@pytest.fixture(scope="module")
def with_history_log(synthetic: Trained, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The synthetic log's first 30% of rows as history-only events without labels (``data
    prepare --history-log``: every one an event), the rest as the store's rows."""
    root = tmp_path_factory.mktemp("history_log")
    cut = int(len(synthetic.log) * 0.3)
    early = root / "early.csv"
    synthetic.log.iloc[:cut].drop(columns=["click"]).to_csv(early, index=False)
    rows, store, run = root / "rows.csv", root / "store", root / "run"
    synthetic.log.iloc[cut:].to_csv(rows, index=False)
    assert main(["data", "prepare", str(rows), "--format", "csv", "--schema",
                 str(synthetic.folder / "seq.schema.yaml"), "--history-log", str(early),
                 "--split", "time", "--time-column", "time", "--out", str(store)]) == 0
    assert main(["train", "--data", str(store), "--model", "deepfm", "--out", str(run),
                 "--set", "model_config.hidden_units=[8]", *TRAINING]) == 0
    return Trained(synthetic.log.iloc[cut:].reset_index(drop=True), "user", "time", "item",
                   "click", EncodedStore.open(store), run, root,
                   synthetic.log.iloc[:cut].drop(columns=["click"]))


def oracle(trained: Trained, rows: pd.DataFrame, events: pd.DataFrame, column: str,
           timed: bool = True) -> list[list[str]]:
    """Each row's history of ``column``: its user's ``events`` strictly before its time
    (every one when not ``timed``), by time then their order in ``events``, the newest
    ``max_len``."""
    history = store_history(trained.store.meta["settings"])
    assert history is not None
    events = events.iloc[np.argsort(events[trained.time].to_numpy(), kind="stable")]
    by_user = {user: found for user, found in events.groupby(trained.user, sort=False)}
    histories = []
    for user, time in zip(rows[trained.user], rows[trained.time], strict=True):
        found = by_user.get(user, events.iloc[:0])
        if timed:
            found = found[found[trained.time] < time]
        histories.append(found[column].astype(str).tolist()[-history.max_len:])
    return histories


def decoded(store: EncodedStore, rows: SplitArrays, name: str) -> list[list[str]]:
    """A history field of encoded ``rows`` as raw values (``<oov>`` for values the encoder
    never kept; padding dropped)."""
    index = [f.name for f in store.feature_map.sequence].index(name)
    spec = next(f for f in store.encoder.schema.fields if f.name == name)
    vocab = store.encoder.vocabs[spec.share_vocab].to_pylist()
    return [["<oov>" if i == 1 else vocab[i - 2] for i in row if i]
            for row in np.asarray(rows.sequences[index]).tolist()]


def as_encoded(store: EncodedStore, histories: list[list[str]], column: str) -> list[list[str]]:
    kept = set(store.encoder.vocabs[column].to_pylist())
    return [[v if v in kept else "<oov>" for v in row] for row in histories]


@pytest.mark.parametrize("name", ["movielens", "synthetic", "with_history_log"])
def test_test_rows_alone_reproduce_the_runs_test_predictions(
    name: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
) -> None:
    """The test split's rows, scored alone with the store's own log as the history source,
    get the histories data prepare gave them, so the run's own test predictions."""
    trained: Trained = request.getfixturevalue(name)
    rows = trained.test_rows()
    predictions = trained.predict(rows, "test.csv")
    np.testing.assert_allclose(predictions, trained.run_predictions(), rtol=0, atol=1e-6)

    printed = capsys.readouterr()
    events = trained.events()
    empty = sum(not h for h in oracle(trained, rows, events, trained.item))
    source = ", ".join(str(path) for path in store_log(trained.store))
    unlabelled = (f" ({len(trained.history_only):,d} rows without labels, each an event: "
                  "history-only events)" if trained.history_only is not None else "")
    assert (f"histories from {source}: {events[trained.user].nunique():,d} users, "
            f"{len(events):,d} events{unlabelled}; {empty:,d} of {len(rows):,d} rows with an "
            "empty history") in printed.out
    if empty:
        assert (f"mutualctr: warning: {empty:,d} of {len(rows):,d} rows are scored with an "
                "empty history") in printed.err
    else:
        assert "warning" not in printed.err


def test_a_history_log_gives_the_histories_its_events_make(
    movielens: Trained, capsys: pytest.CaptureFixture[str],
) -> None:
    """``--history-log`` with the log's ratings up to a time inside the test period gives each
    test row its user's ratings of that file before the row; ``--history-until`` on the whole
    log scores the same."""
    rows = movielens.test_rows()
    cut = float(np.quantile(rows.timestamp, 0.5))
    subset_rows = movielens.log[movielens.log.timestamp <= cut]
    subset = movielens.write(subset_rows, "ratings_until_cut.csv")
    expected = oracle(movielens, rows, subset_rows, "movieId")
    whole = oracle(movielens, rows, movielens.log, "movieId")
    # by hand: the latest test row (after the cut) has its user's newest ratings up to the cut
    latest = int(np.argmax(rows.timestamp.to_numpy()))
    ratings = subset_rows[subset_rows.userId == rows.userId.iloc[latest]]
    assert expected[latest] == ratings.sort_values("timestamp", kind="stable").movieId.tolist()[
        -MAX_LEN:]
    assert expected[latest] != whole[latest]

    history = store_history(movielens.store.meta["settings"])
    assert history is not None
    source = HistorySource(movielens.store, history, [subset])
    encoded, report = source.encode_file(movielens.write(rows, "test.csv"))
    assert decoded(movielens.store, encoded, "hist_item") == as_encoded(
        movielens.store, expected, "item")
    assert report.log is not None and report.log.events == len(subset_rows)

    capsys.readouterr()
    from_subset = movielens.predict(rows, "test.csv", "--history-log", str(subset))
    empty = sum(not h for h in expected)
    printed = capsys.readouterr().out
    assert (f"histories from {subset}: {subset_rows.userId.nunique():,d} users, "
            f"{len(subset_rows):,d} events; {empty:,d} of {len(rows):,d}") in printed
    until = movielens.predict(rows, "test.csv", "--history-until", repr(cut))
    np.testing.assert_array_equal(from_subset, until)
    # against the whole log: the same score where the encoded history is the same, another
    # where it is not
    changed = np.array([a != b for a, b in zip(as_encoded(movielens.store, expected, "item"),
                                               as_encoded(movielens.store, whole, "item"),
                                               strict=True)])
    moved = np.abs(from_subset - movielens.run_predictions())
    assert changed.any() and not changed.all()
    assert moved[~changed].max() <= 1e-6 and moved[changed].max() > 1e-5


def with_given_histories(trained: Trained, rows: pd.DataFrame, as_lists: bool) -> pd.DataFrame:
    """``rows`` with hist_item and hist_category columns holding the oracle's histories from
    the store's log: ``^``-joined text, or lists."""
    given = rows.copy()
    for column in ("item", "category"):
        histories = oracle(trained, rows, trained.events(), column)
        given[f"hist_{column}"] = histories if as_lists else ["^".join(h) for h in histories]
    return given


def test_history_columns_in_the_input_score_as_the_log_does(
    synthetic: Trained, capsys: pytest.CaptureFixture[str],
) -> None:
    rows = synthetic.test_rows()
    given = with_given_histories(synthetic, rows, as_lists=False)
    predictions = synthetic.predict(given, "given.csv")
    np.testing.assert_allclose(predictions, synthetic.run_predictions(), rtol=0, atol=1e-6)
    assert ("histories from the input's columns hist_item, hist_category; 0 of "
            f"{len(rows):,d} rows") in capsys.readouterr().out

    run = mutualctr.load(synthetic.run)
    listed = with_given_histories(synthetic, rows, as_lists=True)
    np.testing.assert_allclose(run.predict(listed), predictions, rtol=0, atol=1e-6)
    # a history longer than max_len keeps its newest events
    padded = listed.assign(hist_item=[["0", "1", *h] for h in listed.hist_item],
                           hist_category=[["0", "1", *h] for h in listed.hist_category])
    full = np.array([len(h) == 5 for h in listed.hist_item])
    assert full.any()
    np.testing.assert_allclose(run.predict(padded)[full], predictions[full], rtol=0, atol=1e-6)

    with pytest.raises(DataError, match="gives hist_item but not hist_category") as info:
        run.predict(given.drop(columns=["hist_category"]))
    assert info.value.field == "hist_category"
    with pytest.raises(ConfigError, match=r"has history columns .* and an event log was given"):
        run.predict(given, history_log=store_log(synthetic.store))


def test_rows_without_times_take_every_event_of_their_user(synthetic: Trained) -> None:
    rows = synthetic.test_rows()
    run = mutualctr.load(synthetic.run)
    untimed = run.predict(rows.drop(columns=["time"]))
    given = with_given_histories(synthetic, rows, as_lists=True)
    for column in ("item", "category"):
        given[f"hist_{column}"] = oracle(synthetic, rows, synthetic.events(), column, timed=False)
    np.testing.assert_allclose(untimed, run.predict(given), rtol=0, atol=1e-6)


def test_unlabelled_rows_under_positive_events_take_the_logs_clicks_and_are_warned_about(
    synthetic: Trained, capsys: pytest.CaptureFixture[str],
) -> None:
    rows = synthetic.test_rows()
    clicks = int(synthetic.log.click.sum())
    unlabelled = synthetic.predict(rows.drop(columns=["click"]), "unlabelled.csv")
    np.testing.assert_allclose(unlabelled, synthetic.run_predictions(), rtol=0, atol=1e-6)
    err = capsys.readouterr().err
    assert (f"mutualctr: warning: {len(rows):,d} of {len(rows):,d} rows have no label and the "
            "store's histories hold clicks only (events: positive): their histories are the "
            f"{clicks:,d} events of") in err

    run = mutualctr.load(synthetic.run)
    with pytest.warns(HistoryWarning, match=f"have no label .* the {clicks:,d} events of"):
        run.predict(rows.drop(columns=["click"]).iloc[:10])

    # a log without labels is history-only events, as data prepare --history-log reads one:
    # every row is an event, said in the summary
    log = synthetic.write(synthetic.log.drop(columns=["click"]), "unlabelled_log.csv")
    every_row = run.predict(rows.drop(columns=["time"]), history_log=log)
    given = rows.drop(columns=["time"]).assign(**{
        f"hist_{c}": [h[-5:] for h in synthetic.log.groupby("user")[c].agg(list).reindex(
            rows.user).tolist()] for c in ("item", "category")})
    np.testing.assert_allclose(every_row, run.predict(given), rtol=0, atol=1e-6)
    test = synthetic.write(rows, "test.csv")
    assert main(["predict", str(synthetic.run), "--input", str(test),
                 "--out", str(synthetic.folder / "x.csv"), "--history-log", str(log)]) == 0
    assert (f"histories from {log}: {synthetic.log.user.nunique():,d} users, "
            f"{len(synthetic.log):,d} events ({len(synthetic.log):,d} rows without labels, each "
            "an event: history-only events)") in capsys.readouterr().out


def test_empty_histories_are_warned_with_their_count(synthetic: Trained) -> None:
    """A log of the first tenth of the rows leaves users without clicks in it with empty
    histories: counted in a HistoryWarning."""
    rows = synthetic.test_rows()
    early = synthetic.log.iloc[: len(synthetic.log) // 10]
    empty = sum(not h for h in oracle(synthetic, rows, early[early.click > 0], "item"))
    assert 0 < empty < len(rows)
    run = mutualctr.load(synthetic.run)
    with pytest.warns(HistoryWarning) as caught:
        run.predict(rows, history_log=[synthetic.write(early, "first_rows.csv")])
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"{empty:,d} of {len(rows):,d} rows are scored with an empty history"]


def test_a_log_without_the_user_column_names_file_and_column(
    synthetic: Trained, capsys: pytest.CaptureFixture[str],
) -> None:
    log = synthetic.write(synthetic.log.drop(columns=["user"]), "no_user.csv")
    test = synthetic.write(synthetic.test_rows(), "test.csv")
    assert main(["predict", str(synthetic.run), "--input", str(test),
                 "--out", str(synthetic.folder / "x.csv"), "--history-log", str(log)]) == 2
    assert f"file {log}, line 1, field 'user': missing columns: user" in capsys.readouterr().err
    with pytest.raises(DataError) as info:
        mutualctr.load(synthetic.run).predict(test, history_log=log)
    assert (info.value.file, info.value.field) == (str(log), "user")


def test_the_exported_signature_documents_the_history_inputs(movielens: Trained) -> None:
    """What a serving system must feed: each history as int64 ids of its field's vocabulary,
    [batch, max_len], oldest first, right-padded with 0."""
    out = movielens.folder / "export" / "model.pt"
    assert main(["export", str(movielens.run), "--format", "torchscript", "--out",
                 str(out)]) == 0
    signature = json.loads(signature_path(out).read_text())
    histories = [spec for spec in signature["input_specs"] if spec.get("history")]
    assert [(h["name"], h["dtype"], h["shape"]) for h in histories] == [
        ("seq_hist_item", "int64", ["batch", MAX_LEN]),
        ("seq_hist_genre", "int64", ["batch", MAX_LEN])]
    assert all("oldest first, right-padded with 0" in h["holds"] for h in histories)
