"""The behaviour histories of rows being scored, taken as a serving system takes them.

A serving system does not find a user's history in the request it scores: it looks the user up
in its event log. For a store whose rows have histories (``data.readers.history``), ``predict``
does the same. Each scored row's ``hist_<column>`` comes from

* an event log: by default the log the store was prepared from (the raw files ``meta.json``
  lists as its ``inputs``), or other files of the store's format (``--history-log``), optionally
  only their events up to a time (``--history-until``). A row of a user gets that user's events
  strictly earlier than its time when the input has the history's time column, else all of
  them; the newest ``max_len``, oldest first; events as the store counts them (``events:
  positive``: the log's clicks only; a log without labels is history-only events, every row
  one, as ``data prepare --history-log`` reads it);
* or the input's own history columns, named as the store's history fields (``hist_item``), each
  a ``^``-separated string (FuxiCTR's sequence separator) or a list per row, oldest event
  first; a longer history keeps its newest ``max_len``.

Rows are never events: the log alone says what a user did. The rule is the builder's own
(:class:`~mutualctr.data.readers.history.HistoryBuilder`): the log's events of the users being
scored and the scored rows go through one builder in time order, the rows marked as no event,
so a row of the store's own test split gets exactly the history ``data prepare`` gave it.

Memory: the log's events (after the ``events`` filter and ``--history-until``) are held, a
time, a user index and one value per history column each; each chunk of scored rows is built
against the events of its own users, :data:`BUILD_ROWS` at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.encoder import Encoder
from mutualctr.data.raw import store_reader
from mutualctr.data.readers import columns
from mutualctr.data.readers.base import BadRows, ParsedChunk, Reader
from mutualctr.data.readers.history import (
    HistoryBuilder,
    HistorySpec,
    concatenated_ranges,
    history_name,
)
from mutualctr.data.readers.movielens import MovieLensReader, ratings_path
from mutualctr.data.readers.tabular import TabularReader, TabularSpec
from mutualctr.data.readers.text import header_of
from mutualctr.data.schema import FieldSpec
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError

HISTORY_SEPARATOR = "^"  # between the events of a history given as text (FuxiCTR's)
BUILD_ROWS = 1 << 16  # events and scored rows handed to the history builder at a time


class HistoryWarning(UserWarning):
    """Scored rows whose histories may not be what the model was trained to read."""


def store_history(settings: dict[str, Any]) -> HistorySpec | None:
    """The histories of the store whose ``meta.json`` recorded ``settings`` (``None``: none)."""
    reader = store_reader(settings)
    if isinstance(reader, MovieLensReader):
        return reader.history
    if isinstance(reader, TabularReader):
        return reader.spec.history
    return None


def store_log(store: EncodedStore) -> list[Path]:
    """The raw files the store's histories were built from, as ``meta.json`` lists them: its
    history-only log (``data prepare --history-log``), then the rows' files (``inputs``, less
    what is no log: each MovieLens ratings file is followed by its movies file, a ``--probs``
    file comes last); the history-only events first, as the builder takes them at a tie. A
    file that is gone or changed size since is a :class:`DataError`."""
    inputs = store.meta["inputs"]
    if store.meta["format"] == "movielens":
        inputs = inputs[::2]
    elif any(split.get("has_prob") for split in store.meta["splits"].values()):
        inputs = inputs[:-1]
    recorded = [*store.meta.get("history_log", []), *inputs]
    for described in recorded:
        path = Path(described["path"])
        if not path.is_file():
            raise DataError("the store's log is gone, so its users' histories are unknown: "
                            "give the event log with --history-log", file=str(path))
        if path.stat().st_size != described["bytes"]:
            raise DataError(f"the store's log changed since the store was prepared "
                            f"({path.stat().st_size:,d} bytes, {described['bytes']:,d} then): "
                            "give it with --history-log to take histories from it as it is now",
                            file=str(path))
    return [Path(described["path"]) for described in recorded]


def _user_field(spec: TabularSpec, history: HistorySpec) -> tuple[FieldSpec, ...]:
    """The history's user column as a categorical field, unless it is a field already."""
    if any(f.name == history.user for f in spec.fields):
        return ()
    return (FieldSpec(history.user, "categorical"),)


def _event_reader(reader: Reader) -> Reader:
    """What reads a log: its users (``columns[user]``), times (``time``), history columns and
    labels (optional). csv / parquet: those columns alone, as ``data prepare`` reads a history
    log; MovieLens: its ratings as prepared."""
    if not isinstance(reader, TabularReader):
        return reader
    assert reader.spec.history is not None
    return TabularReader(reader.spec.history_log_spec(), reader.parquet,
                         time_column=reader.spec.history.time)


def _events(history: HistorySpec, label: np.ndarray, path: Path) -> np.ndarray:
    """Which rows of a log chunk are events, by the builder's rule (``HistoryBuilder``): its
    clicks under ``events: positive``, every row under ``all``, and every row of a log without
    labels (history-only events). ``events`` unset (the store's log had one label): every row,
    but a log whose labels hold both 0 and 1 is refused, as ``data prepare`` refuses it."""
    if history.events == "all" or np.isnan(label).all():
        return np.ones(len(label), dtype=bool)
    if history.events is None:
        if (label > 0).any() and (label == 0).any():
            raise DataError(
                "the log's labels hold both 1 and 0, and the store's history.events is unset "
                "(its own log had one label): give a log of its events alone, or prepare the "
                "store again with events: positive or all", file=str(path))
        return np.ones(len(label), dtype=bool)
    return label > 0


def _input_reader(reader: Reader, history: HistorySpec, names: Sequence[str],
                  given: bool) -> Reader:
    """What reads the rows to score: the store's reader, for csv / parquet without building
    histories, reading the user (unless histories are given) and each row's time when the input
    has the history's time column, and the given history columns (so Parquet reads them)."""
    if not isinstance(reader, TabularReader):
        return reader  # MovieLens: users and timestamps are always there
    extra = (tuple(FieldSpec(name, "sequence") for name in _history_fields(history)) if given
             else _user_field(reader.spec, history))
    spec = replace(reader.spec, fields=reader.spec.fields + extra, history=None)
    timed = not given and history.time in names
    return TabularReader(spec, reader.parquet, time_column=history.time if timed else None)


def _history_fields(history: HistorySpec) -> list[str]:
    return [history_name(c) for c in history.columns]


def _file_columns(reader: Reader, path: Path) -> list[str]:
    """The column names of a raw file (none for a file without header)."""
    if isinstance(reader, TabularReader):
        if reader.parquet:
            try:
                return list(pq.ParquetFile(path).schema_arrow.names)
            except (pa.ArrowInvalid, OSError) as err:
                raise DataError(f"not a readable Parquet file: {err}", file=str(path)) from None
        return header_of(path, reader.spec.delimiter)
    ratings = ratings_path(path)
    return [] if ".dat" in ratings.name else header_of(ratings, ",")


def _given(history: HistorySpec, names: Sequence[str], source: str | None) -> bool:
    """Whether the input (the file ``source``, or rows in memory) gives every history column;
    giving only some is an error."""
    fields = _history_fields(history)
    present = [name for name in fields if name in names]
    if present and len(present) < len(fields):
        missing = next(name for name in fields if name not in names)
        raise DataError(f"the input gives {', '.join(present)} but not {missing}: give every "
                        "history column or none (histories then come from the event log)",
                        file=source, field=missing)
    return bool(present)


def _newest(lists: pa.ListArray, max_len: int) -> pa.ListArray:
    """Each list's last ``max_len`` items."""
    offsets = lists.offsets.to_numpy()
    starts = np.maximum(offsets[:-1], offsets[1:] - max_len)
    lengths = offsets[1:] - starts
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    kept = lists.values.take(pa.array(concatenated_ranges(starts, lengths)))
    return pa.ListArray.from_arrays(pa.array(new_offsets), kept)


def _given_history(column: pa.Array, name: str, max_len: int) -> pa.ListArray:
    """A history column of the input as lists of event values, newest ``max_len`` kept: a list
    column as it is, text split on :data:`HISTORY_SEPARATOR` (an empty cell: no event)."""
    if columns.is_list(column):
        return _newest(columns.token_lists(column), max_len)
    text = columns.utf8(column, name, [])
    split = pc.split_pattern(text, HISTORY_SEPARATOR)
    pieces = pc.list_value_length(split).to_numpy(zero_copy_only=False)
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)  # split gives it one piece, ""
    values = pc.list_flatten(split).filter(pa.array(np.repeat(~empty, pieces)))
    lengths = np.where(empty, 0, pieces)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return _newest(pa.ListArray.from_arrays(pa.array(offsets), values), max_len)


@dataclass
class EventLog:
    """The events of a log grouped by user: user ``k``'s events are ``start[k]`` to
    ``start[k] + count[k]`` of ``time`` and ``values``, in log order."""

    source: str  # the log as messages name it
    users: pa.Array  # [U] distinct users
    start: np.ndarray  # [U]
    count: np.ndarray  # [U]
    time: np.ndarray  # [E]
    values: list[pa.Array]  # per history column, [E]
    unlabelled: int = 0  # rows read from files without labels (each an event)

    @property
    def events(self) -> int:
        return len(self.time)

    @classmethod
    def read(
        cls, reader: Reader, history: HistorySpec, files: Sequence[Path],
        until: float | None, bad_rows: BadRows,
    ) -> EventLog:
        """The events of ``files`` (read in turn), those at or before ``until`` if given, as
        :func:`_events` tells them."""
        reader = _event_reader(reader)
        users, times, values = [], [], []
        unlabelled = 0
        for path in files:
            for chunk in reader.read(path, bad_rows, allow_unlabelled=True):
                assert chunk.time is not None
                keep = _events(history, chunk.label, path)
                unlabelled += int(np.isnan(chunk.label).all()) * len(chunk)
                chunk = chunk.take(keep if until is None else keep & (chunk.time <= until))
                users.append(columns.utf8(chunk.columns[history.user], history.user, []))
                times.append(chunk.time)
                values.append([chunk.columns[c] for c in history.columns])
        encoded = pc.dictionary_encode(pa.chunked_array(users, pa.string())).combine_chunks()
        user = encoded.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(user, kind="stable")
        count = np.bincount(user, minlength=len(encoded.dictionary))
        by_column = [pa.chunked_array([part[k] for part in values], pa.string())
                     .combine_chunks().take(pa.array(order)) for k in range(len(history.columns))]
        return cls(", ".join(str(f) for f in files), encoded.dictionary,
                   np.cumsum(count) - count, count,
                   np.concatenate(times)[order] if times else np.zeros(0), by_column, unlabelled)

    def histories(
        self, history: HistorySpec, users: pa.Array, times: np.ndarray | None,
    ) -> list[pa.ListArray]:
        """Per history column, the history of each row of ``users`` at ``times`` (``None``:
        after every event)."""
        rows = len(users)
        row_user = pc.fill_null(pc.index_in(users, value_set=self.users), -1).to_numpy(
            zero_copy_only=False).astype(np.int64)  # -1: a user without events
        present = np.unique(row_user[row_user >= 0])
        lengths = self.count[present]
        events = concatenated_ranges(self.start[present], lengths)
        event_user = np.repeat(present, lengths)
        row_time = np.full(rows, np.inf) if times is None else times
        time = np.concatenate([self.time[events], row_time])
        order = np.argsort(time, kind="stable")  # each user's items in time, then given order
        time, user = time[order], np.concatenate([event_user, row_user])[order]
        label = (np.arange(len(time)) < len(events)).astype(np.float32)[order]
        blank = pa.array([""] * rows, pa.string())
        values = [pa.concat_arrays([v.take(pa.array(events)), blank]).take(pa.array(order))
                  for v in self.values]
        builder = HistoryBuilder(replace(history, events="positive"), Path(self.source),
                                 BadRows("error"))
        parts: list[list[pa.Array]] = [[] for _ in history.columns]
        for begin in range(0, len(time), BUILD_ROWS):
            part = slice(begin, begin + BUILD_ROWS)
            chunk = ParsedChunk({c: v[part] for c, v in zip(history.columns, values, strict=True)},
                                label[part], np.arange(len(label))[part], pa.table({}))
            built = builder.add(chunk, pa.array(user[part]), time[part])
            scored = pa.array(label[part] == 0)
            for k, c in enumerate(history.columns):
                parts[k].append(built.columns[history_name(c)].filter(scored)
                                .cast(pa.list_(pa.string())))
        position = order[order >= len(events)] - len(events)  # scored rows in built order
        inverse = np.empty(rows, dtype=np.int64)
        inverse[position] = np.arange(rows)
        return [pa.concat_arrays(p).take(pa.array(inverse)) if p else
                pa.array([], pa.list_(pa.string())) for p in parts]


@dataclass
class HistoryReport:
    """Where the scored rows' histories came from, and how many were empty."""

    source: str  # the log's files, or the input's columns
    fields: list[str]  # the history fields
    events_kind: str | None  # the store's ``events`` setting
    log: EventLog | None = None  # None: histories given in the input
    timed: bool = True  # whether rows had times (else all of a user's events)
    rows: int = 0
    empty: int = 0
    unlabelled: int = 0  # rows without a label

    def add(self, chunk: ParsedChunk, lengths: np.ndarray) -> None:
        self.rows += len(chunk)
        self.empty += int(np.count_nonzero(lengths == 0))
        self.unlabelled += int(np.count_nonzero(np.isnan(chunk.label)))

    def summary(self) -> str:
        """E.g. ``histories from ratings.csv: 610 users, 100,836 events; 12 of 2,000 rows with
        an empty history``."""
        counts = (f": {len(self.log.users):,d} users, {self.log.events:,d} events"
                  if self.log is not None else "")
        if self.log is not None and self.log.unlabelled:
            counts += (f" ({self.log.unlabelled:,d} rows without labels, each an event: "
                       "history-only events)")
        return (f"histories from {self.source}{counts}; {self.empty:,d} of {self.rows:,d} rows "
                "with an empty history")

    def warnings(self) -> list[str]:
        """What a reader of the predictions must know: rows scored with no history, and an
        unlabelled input under ``events: positive``."""
        found = []
        if self.empty:
            where = ("before the row's time" if self.timed else "at all") if self.log else ""
            found.append(
                f"{self.empty:,d} of {self.rows:,d} rows are scored with an empty history "
                f"({', '.join(self.fields)} all padding): the model reads these histories and "
                + (f"their users have no event in {self.source} {where}" if self.log else
                   f"the input's {', '.join(self.fields)} hold no event for them"))
        if self.log is not None and self.events_kind == "positive" and self.unlabelled:
            found.append(
                f"{self.unlabelled:,d} of {self.rows:,d} rows have no label and the store's "
                "histories hold clicks only (events: positive): their histories are the "
                f"{self.log.events:,d} events of {self.source}; the unlabelled rows, whose "
                "clicks are unknown, add none to each other's histories")
        return found

    def warn(self) -> None:
        """Each of :meth:`warnings` as a :class:`HistoryWarning`."""
        for message in self.warnings():
            warnings.warn(message, HistoryWarning, stacklevel=3)


class HistorySource:
    """The rows to score of a store with histories, encoded with their users' histories from
    an event log or from their own columns (module docstring).

    ``log_files``: the event log (``None``: the store's own, :func:`store_log`); ``until``:
    only its events at or before that time. The log is read on first use and kept.
    """

    def __init__(self, store: EncodedStore, history: HistorySpec,
                 log_files: Sequence[str | Path] | None = None,
                 until: float | None = None) -> None:
        self.store = store
        self.history = history
        self.reader = store_reader(store.meta["settings"])
        self.explicit = log_files is not None
        self.log_files = None if log_files is None else [Path(p) for p in log_files]
        self.until = until
        self._log: EventLog | None = None

    @property
    def encoder(self) -> Encoder:
        return self.store.encoder

    def log(self) -> EventLog:
        if self._log is None:
            files = self.log_files if self.log_files is not None else store_log(self.store)
            bad_rows = BadRows(self.store.meta["settings"].get("on_bad_row", "error"))
            self._log = EventLog.read(self.reader, self.history, files, self.until, bad_rows)
        return self._log

    def encode_chunks(
        self, path: str | Path,
    ) -> tuple[HistoryReport, Iterator[tuple[SplitArrays, pa.Table]]]:
        """The raw file ``path`` encoded chunk by chunk, with the raw rows (as
        ``EncodedStore.encode_chunks``), and the report the chunks fill in as they are read."""
        path = Path(path)
        reader, report = self._start(_file_columns(self.reader, path), str(path))
        return report, self._encoded(reader.read(path, BadRows("error"), allow_unlabelled=True),
                                     report)

    def _encoded(
        self, chunks: Iterator[ParsedChunk], report: HistoryReport,
    ) -> Iterator[tuple[SplitArrays, pa.Table]]:
        for chunk in chunks:
            chunk = self._with_histories(chunk, report)
            yield self.encoder.encode(chunk), chunk.raw

    def encode_table(self, table: pa.Table) -> tuple[SplitArrays, HistoryReport]:
        """Rows in memory (``EncodedStore.encode_table``) with their histories."""
        reader, report = self._start(table.column_names, None)
        encoded = [rows for rows, _ in self._encoded(reader.read_table(table, BadRows("error")),
                                                     report)]
        return _joined(encoded, self.encoder), report

    def encode_file(self, path: str | Path) -> tuple[SplitArrays, HistoryReport]:
        """:meth:`encode_chunks` joined, in memory."""
        report, chunks = self.encode_chunks(path)
        return _joined([rows for rows, _ in chunks], self.encoder), report

    def _start(self, names: Sequence[str], source: str | None) -> tuple[Reader, HistoryReport]:
        given = _given(self.history, names, source)
        if given and self.explicit:
            raise ConfigError(f"{source or 'the input'} has history columns "
                              f"({', '.join(_history_fields(self.history))}) and an event log "
                              "was given: drop one of them")
        reader = _input_reader(self.reader, self.history, names, given)
        fields = _history_fields(self.history)
        if given:
            state = HistoryReport(f"the input's columns {', '.join(fields)}", fields,
                                  self.history.events)
        else:
            log = self.log()
            until = "" if self.until is None else f" (events up to time {self.until:g})"
            timed = not isinstance(reader, TabularReader) or reader.time_column is not None
            state = HistoryReport(log.source + until, fields, self.history.events, log, timed)
        return reader, state

    def _with_histories(self, chunk: ParsedChunk, state: HistoryReport) -> ParsedChunk:
        if state.log is None:
            lists = [_given_history(chunk.raw.column(name).combine_chunks(), name,
                                    self.history.max_len) for name in state.fields]
        else:
            users = columns.utf8(chunk.columns[self.history.user], self.history.user, [])
            lists = state.log.histories(self.history, users,
                                        chunk.time if state.timed else None)
        state.add(chunk, pc.list_value_length(lists[0]).to_numpy(zero_copy_only=False))
        return replace(chunk, columns={**chunk.columns,
                                       **dict(zip(state.fields, lists, strict=True))})


def _joined(chunks: list[SplitArrays], encoder: Encoder) -> SplitArrays:
    return SplitArrays.concat(chunks) if chunks else SplitArrays.empty(encoder.feature_map)
