"""Behaviour histories built from a time-ordered log, chunk by chunk, in bounded memory.

Used by the MovieLens reader (``--history-len``) and the csv / parquet reader (the schema's
``history`` key). For a row ``r`` of user ``u`` at time ``t`` and each history column ``c``::

    hist_c(r) = [c(e) for each event e of u with time(e) < t]   oldest first, newest max_len kept

* strictly earlier: rows at the same time as ``r`` (``r`` itself included) never enter its
  history, so nothing at or after the row a history is a feature of is in it (no leakage);
* events are the user's rows (``events: all``) or only its rows labelled positive
  (``events: positive``, a click history); every row gets a history either way. Unset, a log
  whose labels hold both 0 and 1 is a :class:`~mutualctr.errors.ConfigError` (sampled
  negatives must not enter histories by default); with one label every row is an event;
* history-only events (a ``log`` of the builder, ``data prepare --history-log``) enter later
  rows' histories by the same rule without being rows, merged with the rows by time;
* most recent last; a user's first row has an empty history (all padding once encoded); with
  more than ``max_len`` earlier events the newest ``max_len`` are kept, so the encoder's
  left-to-right cut to ``max_len`` keeps exactly these;
* the columns of one spec share their events: position ``k`` of ``hist_item`` and of
  ``hist_category`` describe the same event (what target attention pairs).

Input order: each user's rows come in non-decreasing time (a log sorted by time, or grouped by
user and sorted by time within each user). The builder never sorts, which would need the whole
log: a row earlier than a previous row of its user is a bad row (``--on-bad-row error`` stops
with its file, line and the time column; ``skip`` drops and counts it).
:func:`time_sorted_user_runs` serves files grouped by user but not sorted by time within a user
(MovieLens): it sorts each run of one user's consecutive rows, holding one run at a time.

Memory: per user, the newest ``max_len`` events before its latest event time and the newest
``max_len`` at that time (not yet visible to rows at that same time), as int32 codes: at most
``8 * max_len`` bytes per user and history column; plus one code per distinct user and per
distinct value of each history column. Each chunk is handled with vectorised array operations
(no Python loop over rows); histories come out as list arrays of dictionary-encoded values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mutualctr.data.readers.base import BadRows, Issue, ParsedChunk
from mutualctr.data.schema import FieldSpec
from mutualctr.errors import ConfigError

HistoryEvents = Literal["all", "positive"]
HISTORY_PREFIX = "hist_"
BACKWARDS = ("earlier than a previous row of the same user (histories need each user's rows "
             "in time order)")


def history_name(column: str) -> str:
    """The sequence field holding the history of ``column``: ``hist_<column>``."""
    return HISTORY_PREFIX + column


@dataclass(frozen=True)
class HistorySpec:
    """Which histories to build: the schema file's ``history`` key (see ``docs/data.md``)."""

    user: str  # the column of user ids
    time: str  # the column of event times (numbers, e.g. Unix seconds)
    columns: tuple[str, ...]  # categorical fields whose earlier values make hist_<column>
    max_len: int = 50
    # all, positive, or unset: then a log whose labels hold both 0 and 1 is refused
    # (:class:`HistoryBuilder`), one with a single label (or none) has every row as an event
    events: HistoryEvents | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("history: 'columns' is empty")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"history: a column is named twice in {list(self.columns)}")
        if self.max_len < 1:
            raise ValueError(f"history: max_len must be >= 1, got {self.max_len}")

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """One sequence field per column, sharing that column's vocabulary."""
        return tuple(FieldSpec(history_name(c), "sequence", max_len=self.max_len, share_vocab=c)
                     for c in self.columns)


def _ragged(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every item of consecutive groups of ``lengths`` items: its group and its index in
    the group (``[2, 0, 3]`` -> ``[0, 0, 2, 2, 2]``, ``[0, 1, 0, 1, 2]``)."""
    group = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return group, np.arange(len(group)) - starts[group]


def concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ranges ``[starts[i], starts[i] + lengths[i])`` one after the other (16 bytes per item
    at the peak: the histories of a chunk can hold ``max_len`` items per row)."""
    out = np.arange(int(lengths.sum()), dtype=np.int64)
    out += np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return out


class ValueCodes:
    """Dense integer codes of one column's distinct values, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []

    def encode(self, values: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(values, null_encoding="encode")
        lookup = np.empty(len(encoded.dictionary), dtype=np.int32)
        for k, value in enumerate(encoded.dictionary.to_pylist()):
            code = self.index.get(value)
            if code is None:
                code = self.index[value] = len(self.values)
                self.values.append(value)
            lookup[k] = code
        return lookup[encoded.indices.to_numpy(zero_copy_only=False)]

    def decode(self, codes: np.ndarray) -> pa.DictionaryArray:
        """``codes`` as a dictionary array holding only the values they use."""
        used = np.zeros(len(self.values), dtype=bool)
        used[codes] = True
        distinct = np.flatnonzero(used)
        local = np.zeros(len(self.values), dtype=np.int32)
        local[distinct] = np.arange(len(distinct), dtype=np.int32)
        dictionary = pa.array([self.values[k] for k in distinct], pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(local[codes]), dictionary)


class _UserState:
    """Per user code: the newest ``max_len`` events before ``pending_time`` (committed) and the
    newest ``max_len`` events at ``pending_time`` (pending), as value codes per history column,
    and the user's latest row time (for the order check). Arrays grow by doubling."""

    def __init__(self, max_len: int, n_columns: int) -> None:
        self.committed = [np.zeros((0, max_len), np.int32) for _ in range(n_columns)]
        self.pending = [np.zeros((0, max_len), np.int32) for _ in range(n_columns)]
        self.n_committed = np.zeros(0, np.int64)
        self.n_pending = np.zeros(0, np.int64)
        self.pending_time = np.zeros(0)
        self.last_time = np.zeros(0)

    def grow(self, users: int) -> None:
        old = len(self.last_time)
        if users <= old:
            return
        size = max(users, 2 * old, 1024)

        def grown(a: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((size, *a.shape[1:]), fill, dtype=a.dtype)
            out[:old] = a
            return out

        self.committed = [grown(a, 0) for a in self.committed]
        self.pending = [grown(a, 0) for a in self.pending]
        self.n_committed, self.n_pending = grown(self.n_committed, 0), grown(self.n_pending, 0)
        self.pending_time = grown(self.pending_time, -np.inf)
        self.last_time = grown(self.last_time, -np.inf)


@dataclass
class _Events:
    """The events of the users of one chunk as one sequence, by (user, time, input order):
    each user's state first (committed events, then pending), then the chunk's events."""

    group: np.ndarray  # [E] the user's index among the chunk's distinct users
    time: np.ndarray  # [E] (committed events: -inf, they precede everything the user has)
    codes: list[np.ndarray]  # per history column, [E]
    start: np.ndarray  # [G] where each user's events begin
    count: np.ndarray  # [G]


@dataclass
class _NewEvents:
    """Events to add: user codes, times and value codes per history column (in input order)."""

    user: np.ndarray
    time: np.ndarray
    codes: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask: np.ndarray) -> _NewEvents:
        return _NewEvents(self.user[mask], self.time[mask], [c[mask] for c in self.codes])

    @staticmethod
    def concat(parts: list[_NewEvents], n_columns: int) -> _NewEvents:
        return _NewEvents(np.concatenate([np.zeros(0, np.int32)] + [p.user for p in parts]),
                          np.concatenate([np.zeros(0)] + [p.time for p in parts]),
                          [np.concatenate([np.zeros(0, np.int32)] + [p.codes[k] for p in parts])
                           for k in range(n_columns)])


LOG_ORDER = ("earlier than the event before it in the history log (its events are merged with "
             "the rows by time: sort the log by time and give its files in time order)")
ROW_ORDER = ("earlier than the row before it (with a history log the rows are merged with the "
             "log's events by time: sort the rows by time and give the files in time order)")


class HistoryBuilder:
    """Adds the ``hist_<column>`` columns of ``spec`` to chunks read in order.

    Its state is the recent events of the users seen so far, so one builder read over several
    files in turn (``data prepare``'s inputs, in time order) carries a user's history from one
    file into the next; ``path`` names the file being read in bad-row messages.

    ``log``: history-only events, ``(file, chunk)`` pairs in time order whose chunks carry the
    columns ``spec.user`` and ``spec.columns``, each row's time (``chunk.time``) and labels
    (``NaN`` when the log has none). They enter the histories of later rows under the same
    strictly-earlier rule but are not rows themselves. The log is merged with the rows by time:
    before a chunk of rows is added, the log is read up to that chunk's last time (its events
    entirely before the chunk's first row are added on their own, a log chunk at a time), so
    both must be sorted by time; a row or an event earlier than the one before it in its own
    stream is a bad row (:data:`ROW_ORDER`, :data:`LOG_ORDER`). With ``events: positive`` only
    the log's events labelled 1 count, unless the log has no labels (every row an event).
    """

    def __init__(self, spec: HistorySpec, path: Path, bad_rows: BadRows,
                 order_hint: str = "", log: Iterable[tuple[Path, ParsedChunk]] | None = None,
                 ) -> None:
        self.spec = spec
        self.path = path
        self.bad_rows = bad_rows
        self.order_hint = order_hint
        self.users = ValueCodes()
        self.values = [ValueCodes() for _ in spec.columns]
        self.state = _UserState(spec.max_len, len(spec.columns))
        self.log = None if log is None else iter(log)
        self.held = _NewEvents.concat([], len(spec.columns))  # read from the log, not yet added
        self.latest_row = -np.inf  # rows and log events in time order (with a log)
        self.latest_event = -np.inf
        self.labels_seen: dict[bool, tuple[Path, int]] = {}  # positive? -> first file and line

    def add(self, chunk: ParsedChunk, users: pa.Array, times: np.ndarray) -> ParsedChunk:
        """``chunk`` (its rows' users and times aligned with it) with the history columns
        added, less the rows that go back in time when bad rows are skipped."""
        user = self.users.encode(users)
        self.state.grow(len(self.users.values))
        issues = [self._backwards_issue(user, times)]
        if self.log is not None:
            issues.append(_order_issue(times, self.latest_row, self.spec.time, ROW_ORDER))
        if any(issue.mask.any() for issue in issues):
            keep = self.bad_rows.check(self.path, chunk.lines, issues)
            chunk, user, times = chunk.take(keep), user[keep], times[keep]
        if len(times):
            self.latest_row = max(self.latest_row, float(times.max()))
        np.maximum.at(self.state.last_time, user, times)
        values = [codes.encode(chunk.columns[c])
                  for codes, c in zip(self.values, self.spec.columns, strict=True)]
        is_event = self._is_event(chunk.label, self.path, chunk.lines, from_log=False)
        logged = self._log_events(times)
        rows = _NewEvents(user, times, values).take(is_event)
        events = _NewEvents.concat([logged, rows], len(self.spec.columns))  # ties: log first
        histories = self._step(user, times, events)
        return replace(chunk, columns={**chunk.columns, **histories})

    def _backwards_issue(self, user: np.ndarray, times: np.ndarray) -> Issue:
        reason = BACKWARDS + (f"; {self.order_hint}" if self.order_hint else "")
        return Issue(self._backwards(user, times), self.spec.time, reason, pa.array(times))

    def _is_event(self, label: np.ndarray, path: Path, lines: np.ndarray,
                  from_log: bool) -> np.ndarray:
        """Which rows enter histories. ``events`` unset: every row, but labels holding both 0
        and 1 (sampled negatives, or impressions without a click) are refused -- putting the
        negatives into every history is a choice to make, not a default."""
        events = self.spec.events
        if events is None:
            self._check_one_label(label, path, lines)
            return np.ones(len(label), bool)
        if events == "all" or (from_log and np.isnan(label).all()):
            return np.ones(len(label), bool)
        return label > 0

    def _check_one_label(self, label: np.ndarray, path: Path, lines: np.ndarray) -> None:
        for positive, rows in ((True, label > 0), (False, label == 0)):
            if rows.any() and positive not in self.labels_seen:
                self.labels_seen[positive] = (path, int(lines[np.flatnonzero(rows)[0]]))
        if len(self.labels_seen) == 2:
            (p_file, p_line), (n_file, n_line) = self.labels_seen[True], self.labels_seen[False]
            raise ConfigError(
                f"schema key history.events is not set and the labels hold both 1 ({p_file} "
                f"line {p_line}) and 0 ({n_file} line {n_line}): set events: positive (only "
                f"rows labelled 1 enter histories: clicks, not sampled negatives or skipped "
                f"impressions) or events: all (every row enters, negatives included)")

    def _log_events(self, times: np.ndarray) -> _NewEvents:
        """The log's events up to this chunk's last time, to add with its rows; the log's
        chunks entirely before its first row are added first, on their own (so what is held
        is the log's events within one chunk's time span)."""
        if self.log is None or not len(times):
            return _NewEvents.concat([], len(self.spec.columns))
        first, last = float(times.min()), float(times.max())
        with_rows = [self.held]
        while not len(with_rows[-1]) or with_rows[-1].time[-1] <= last:
            more = self._read_log()
            if more is None:
                break
            if not len(more):
                continue
            if len(with_rows) == 1 and more.time[-1] < first:
                earlier = _NewEvents.concat([*with_rows, more], len(self.spec.columns))
                self._step(earlier.user[:0], earlier.time[:0], earlier)
                with_rows = [_NewEvents.concat([], len(self.spec.columns))]
                continue
            with_rows.append(more)
        joined = _NewEvents.concat(with_rows, len(self.spec.columns))
        now = joined.time <= last
        self.held = joined.take(~now)
        return joined.take(now)

    def _read_log(self) -> _NewEvents | None:
        """The log's next chunk as events, its bad rows dropped (or raised); ``None`` at its
        end."""
        assert self.log is not None
        item = next(self.log, None)
        if item is None:
            return None
        path, chunk = item
        assert chunk.time is not None
        user = self.users.encode(chunk.columns[self.spec.user])
        self.state.grow(len(self.users.values))
        order = _order_issue(chunk.time, self.latest_event, self.spec.time, LOG_ORDER)
        if order.mask.any():
            keep = self.bad_rows.check(path, chunk.lines, [order])
            chunk, user = chunk.take(keep), user[keep]
        assert chunk.time is not None
        if len(chunk):
            self.latest_event = max(self.latest_event, float(chunk.time.max()))
        values = [codes.encode(chunk.columns[c])
                  for codes, c in zip(self.values, self.spec.columns, strict=True)]
        events = _NewEvents(user, chunk.time, values)
        return events.take(self._is_event(chunk.label, path, chunk.lines, from_log=True))

    def _step(self, user: np.ndarray, times: np.ndarray, new: _NewEvents) -> dict[str, Any]:
        """Adds the events ``new`` and gives the histories of the rows (``user``, ``times``)
        as list arrays by field name: each row sees the events of its user strictly before
        its time, these included."""
        present, inverse = np.unique(np.concatenate([user, new.user]), return_inverse=True)
        group, event_group = inverse[:len(user)], inverse[len(user):]
        events, ends = self._events(present, group, times, event_group, new)
        self._remember(present, events)
        starts = np.maximum(events.start[group], ends - self.spec.max_len)
        lengths = ends - starts
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        taken = concatenated_ranges(starts, lengths)
        return {
            history_name(c): pa.ListArray.from_arrays(offsets, codes.decode(event_codes[taken]))
            for c, codes, event_codes in zip(self.spec.columns, self.values, events.codes,
                                             strict=True)
        }

    def _backwards(self, user: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Rows earlier than a previous row of their user, in this chunk or an earlier one."""
        if not len(user):
            return np.zeros(0, dtype=bool)
        order = np.argsort(user, kind="stable")
        by_user, by_time = user[order], times[order]
        group = np.cumsum(np.concatenate([[0], by_user[1:] != by_user[:-1]]))
        _, rank = np.unique(by_time, return_inverse=True)
        span = int(rank.max()) + 1
        # the running maximum of (group, rank) keys is the latest time so far within the group
        latest = np.maximum.accumulate(group * span + rank) - group * span
        sorted_bad = (rank < latest) | (by_time < self.state.last_time[by_user])
        bad = np.empty(len(user), dtype=bool)
        bad[order] = sorted_bad
        return bad

    def _events(
        self, present: np.ndarray, group: np.ndarray, times: np.ndarray,
        event_group: np.ndarray, new: _NewEvents,
    ) -> tuple[_Events, np.ndarray]:
        """The users' event sequence (their state, then ``new``), and for every row where its
        history ends: the number of that sequence's events that sort before the row, rows
        sorting before the events of their own time (so a row sees no event at its time)."""
        state, n_groups = self.state, len(present)
        n_committed, n_pending = state.n_committed[present], state.n_pending[present]
        c_group, c_index = _ragged(n_committed)
        p_group, p_index = _ragged(n_pending)
        n_rows = len(group)
        # items: committed events, pending events, the chunk's rows (queries), the new events
        item_group = np.concatenate([c_group, p_group, group, event_group])
        item_time = np.concatenate([np.full(len(c_group), -np.inf),
                                    state.pending_time[present][p_group], times, new.time])
        item_kind = np.concatenate([np.ones(len(c_group) + len(p_group), np.int8),
                                    np.zeros(n_rows, np.int8), np.ones(len(new), np.int8)])
        order = np.lexsort((item_kind, item_time, item_group))  # stable: ties keep input order
        sorted_event = item_kind[order] == 1
        before = np.cumsum(sorted_event) - sorted_event  # events sorting before each item
        n_state = len(c_group) + len(p_group)
        ends = np.empty(n_rows, dtype=np.int64)
        queries = ~sorted_event
        ends[order[queries] - n_state] = before[queries]
        event_items = order[sorted_event]
        new_event = event_items >= n_state + n_rows
        taken = np.where(new_event, event_items - n_rows, event_items)  # skip the queries
        codes = [
            np.concatenate([committed[present[c_group], c_index],
                            pending[present[p_group], p_index], value])[taken]
            for committed, pending, value in zip(state.committed, state.pending, new.codes,
                                                 strict=True)
        ]
        count = n_committed + n_pending + np.bincount(event_group, minlength=n_groups)
        events = _Events(item_group[event_items], item_time[event_items], codes,
                         np.cumsum(count) - count, count)
        return events, ends

    def _remember(self, present: np.ndarray, events: _Events) -> None:
        """Each user's new state: its newest events at its latest event time (pending) and the
        newest before them (committed), ``max_len`` of each at most."""
        state, max_len = self.state, self.spec.max_len
        has = events.count > 0
        users, start, end = present[has], events.start[has], (events.start + events.count)[has]
        n = len(events.time)
        run_starts = np.ones(n, dtype=bool)
        run_starts[1:] = (events.group[1:] != events.group[:-1]) | (
            events.time[1:] != events.time[:-1])
        run_start = np.maximum.accumulate(np.where(run_starts, np.arange(n), 0))
        last_run = run_start[end - 1]
        for arrays, counts, first, stop in (
            (state.committed, state.n_committed, np.maximum(start, last_run - max_len), last_run),
            (state.pending, state.n_pending, np.maximum(last_run, end - max_len), end),
        ):
            lengths = stop - first
            owner, k = _ragged(lengths)
            for array, codes in zip(arrays, events.codes, strict=True):
                array[users[owner], k] = codes[first[owner] + k]
            counts[users] = lengths
        state.pending_time[users] = events.time[end - 1]


def _order_issue(times: np.ndarray, latest: float, field: str, reason: str) -> Issue:
    """Rows earlier than the row before them (a stream in time order), ``latest`` the latest
    time of the stream's earlier chunks."""
    running = np.maximum.accumulate(np.concatenate([[latest], times]))[:-1]
    return Issue(times < running, field, reason, pa.array(times))


def time_sorted_user_runs(chunks: Iterable[ParsedChunk], user: str) -> Iterator[ParsedChunk]:
    """The rows of ``chunks`` re-cut so that no run of consecutive rows of one user spans two
    chunks, each chunk sorted by (run, time, input order).

    For files grouped by user but not sorted by time within a user (MovieLens ratings are
    sorted by user, then movie). Memory: the rows of one run (the most active user's rows).
    A user whose rows are not all together gets one run per stretch; a later run earlier in
    time than an earlier one is then a bad row for :class:`HistoryBuilder`.
    """
    held: ParsedChunk | None = None
    for chunk in chunks:
        if held is not None:
            chunk = ParsedChunk.concat(held, chunk)
        if not len(chunk):
            continue
        users = chunk.columns[user]
        other = pc.not_equal(users, users[-1]).to_numpy(zero_copy_only=False)
        cut = int(np.flatnonzero(other)[-1]) + 1 if other.any() else 0
        position = np.arange(len(chunk))
        held = chunk.take(position >= cut)
        if cut:
            yield _sorted_by_run_and_time(chunk.take(position < cut), user)
    if held is not None and len(held):
        yield _sorted_by_run_and_time(held, user)


def _sorted_by_run_and_time(chunk: ParsedChunk, user: str) -> ParsedChunk:
    assert chunk.time is not None
    users = chunk.columns[user]
    changes = pc.not_equal(users[1:], users[:-1]).to_numpy(zero_copy_only=False)
    run = np.concatenate([[0], np.cumsum(changes)])
    return chunk.select(np.lexsort((chunk.time, run)))
