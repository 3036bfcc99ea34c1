"""``data prepare``: raw files -> split -> encoder fitted on train -> encoded store.

Two streaming passes, so memory does not grow with the input's size. The first parses and
validates the raw files (reading and checking run a chunk ahead in a background thread),
decides each row's split, counts rows, fits the encoder on train rows and caches the typed,
dictionary-encoded rows in an Arrow IPC stream beside the store; the second reads that cache
(no parsing) and encodes every row into ``.npy`` files of known shape, written front to back.
A chronological split needs one more parse first, to find where the input ends; a split by
time one more parse that keeps only each row's time (8 bytes a row), to find the two cut-off
times; a split by user (``user-last``) one more parse that keeps each user's ``2k`` newest
distinct times. The random split is decided per row from a hash of ``(seed, file, line)``, so
it needs no state and does not depend on chunking.

A folder that already holds a store built from the same inputs (sizes and checksums) and
settings is reused as is; one built from anything else is refused unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Literal, TypeVar

import numpy as np
import pyarrow as pa

from mutualctr.data.encoder import Encoder, EncoderFitter, with_dictionaries
from mutualctr.data.readers import ReaderOptions, make_reader
from mutualctr.data.readers.base import BadRows, Issue, OnBadRow, ParsedChunk, Reader
from mutualctr.data.readers.columns import floats
from mutualctr.data.readers.history import ValueCodes
from mutualctr.data.readers.movielens import movies_file, ratings_path
from mutualctr.data.readers.text import read_delimited
from mutualctr.data.store import (
    ENCODER_FILE,
    META_FILE,
    SPLIT_NAMES,
    STORE_FORMAT_VERSION,
    EncodedStore,
    SplitWriter,
)
from mutualctr.errors import ConfigError, DataError
from mutualctr.files import write_errors, write_json

SplitMethod = Literal["random", "chronological", "time", "files", "user-last"]
SPLIT_METHODS: tuple[str, ...] = ("random", "chronological", "time", "files", "user-last")
TIMED_SPLITS = ("time", "user-last")  # splits that read each row's time
MOVIELENS_USER = "userId"  # the raw column of MovieLens users (both file kinds)
TIME_FORMATS = ("movielens", "csv", "parquet")  # readers that can give each row's time
PROB_FORMATS = {"criteo": 0, "csv": 1, "parquet": 0}  # --probs: lines before the first row
CHECKSUM_BLOCK = 1 << 20
CACHE_FILE = ".first-pass.arrow"  # typed rows of the first pass, removed when done
PREFETCH_DEPTH = 1  # parsed chunks waiting for the encoder; each one is memory in flight
_NO_RAW = pa.table({})
T = TypeVar("T")


@dataclass(frozen=True)
class SplitOptions:
    """How rows are assigned to train / valid / test.

    * ``random``: each row independently, with probabilities ``ratios`` (seeded hash of the
      row's file and line; the papers' 8:1:1);
    * ``chronological``: by position in the input (assumed in time order, as Criteo and Avazu
      logs are): the first ``ratios[0]`` of the lines train, the next ``ratios[1]`` valid;
    * ``time``: by each row's time (MovieLens: its timestamp; csv / parquet: the numbers in
      ``time_column``), see :class:`_TimeSplitter`;
    * ``files``: one input file per split, in the order train, valid[, test];
    * ``user-last``: per user, the rows at its ``user_last`` newest distinct times to test, the
      rows at the ``user_last`` distinct times before to valid, the rest to train (the
      leave-one-out split of sequential recommendation and of DIN's Amazon data), by the
      rows' times (``time_column``) and users (``user_column``), see :class:`_UserLastSplitter`.
      csv / parquet: both default to the schema's ``history`` time and user.
    """

    method: SplitMethod = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    time_column: str | None = None
    user_column: str | None = None
    user_last: int = 1

    def __post_init__(self) -> None:
        if self.method not in SPLIT_METHODS:
            raise ConfigError(f"split must be one of {SPLIT_METHODS}, got {self.method!r}")
        if len(self.ratios) != 3 or min(self.ratios) < 0 or sum(self.ratios) <= 0:
            raise ConfigError(f"split ratios must be 3 non-negative numbers, got {self.ratios}")
        if self.time_column is not None and self.method not in TIMED_SPLITS:
            raise ConfigError("a time column is only used by --split time and user-last")
        if self.user_column is not None and self.method != "user-last":
            raise ConfigError("a user column is only used by --split user-last")
        if self.user_last < 1:
            raise ConfigError(f"--user-last must be >= 1, got {self.user_last}")
        if self.user_last != 1 and self.method != "user-last":
            raise ConfigError("--user-last is only used by --split user-last")

    def settings(self) -> dict[str, Any]:
        """As recorded in ``meta.json`` (no ``time_column`` key when there is none, and the
        user split's keys only for it, so stores built before they existed are recognised)."""
        recorded = asdict(self)
        if self.time_column is None:
            del recorded["time_column"]
        if self.method != "user-last":
            del recorded["user_column"], recorded["user_last"]
        return recorded


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al., 2014): a bijective 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_uniforms(seed: int, file_index: int, lines: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) number per row, a pure function of (seed, file, line)."""
    key = lines.astype(np.uint64) | (np.uint64(file_index) << np.uint64(48))
    salt = _mix64(np.array([seed % (1 << 64)], dtype=np.uint64))
    with np.errstate(over="ignore"):
        hashed = _mix64(key * np.uint64(0x9E3779B97F4A7C15) + salt)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _cuts(ratios: Sequence[float]) -> np.ndarray:
    """The two cut points in [0, 1]: where train ends and where valid ends."""
    ratios = np.asarray(ratios, dtype=np.float64)
    return np.cumsum(ratios)[:-1] / ratios.sum()


class _Splitter:
    """Split index (0 train, 1 valid, 2 test) of every row of a chunk, by file and line."""

    def __init__(self, options: SplitOptions, last_lines: list[int] | None) -> None:
        self.options = options
        self.cuts = _cuts(options.ratios)
        self.last_lines = last_lines

    def __call__(self, file_index: int, chunk: ParsedChunk) -> np.ndarray:
        lines = chunk.lines
        if self.options.method == "files":
            return np.full(len(lines), file_index, dtype=np.int8)
        if self.options.method == "random":
            position = row_uniforms(self.options.seed, file_index, lines)
        else:
            assert self.last_lines is not None
            position = (lines - 1) / self.last_lines[file_index]
        return np.searchsorted(self.cuts, position, side="right").astype(np.int8)


@dataclass
class _TimeCut:
    """One boundary of the split by time: rows after ``time``, and the rows at exactly ``time``
    from the ``before``-th on (0-based, in input order), are past it."""

    time: float
    before: int
    seen_at_time: int = 0  # rows at exactly ``time`` routed so far

    def past(self, times: np.ndarray) -> np.ndarray:
        tied = times == self.time
        rank = self.seen_at_time + np.cumsum(tied) - 1  # among tied rows, in input order
        self.seen_at_time += int(tied.sum())
        return (times > self.time) | (tied & (rank >= self.before))


class _TimeSplitter:
    """Split by time: in the order of (time, input order) -- ties broken by file, then line --
    the first ``round(c1 * N)`` rows train, up to ``round(c2 * N)`` valid, the rest test
    (``c1``, ``c2``: the cumulative ratios over their sum; ``N``: rows).

    Built from every row's time (one float64 each, partitioned in place to find the two
    cut-off times; no row order is stored). Rows are then routed chunk by chunk, in the same
    input order, by comparing their time with the cut-offs and counting the rows tied with a
    cut-off, so the split sizes are exact.
    """

    def __init__(self, times: np.ndarray, ratios: Sequence[float]) -> None:
        n = len(times)
        ends = np.floor(_cuts(ratios) * n + 0.5).astype(np.int64)  # rows before each cut
        inside = ends[ends < n]
        if len(inside):
            times.partition(inside)  # times[k] is now the k-th smallest, for each k in inside
        self.cuts = [
            _TimeCut(float(times[k]), int(k - np.count_nonzero(times < times[k]))) if k < n
            else _TimeCut(np.inf, 0)  # nothing is past it
            for k in ends
        ]

    def __call__(self, file_index: int, chunk: ParsedChunk) -> np.ndarray:
        assert chunk.time is not None
        which = np.zeros(len(chunk), dtype=np.int8)
        for cut in self.cuts:
            which += cut.past(chunk.time)
        return which


class _NewestTimes:
    """Per user, its ``keep`` newest distinct times, newest first (``-inf`` where it has
    fewer): ``8 * keep`` bytes per user, filled chunk by chunk in any row order."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.users = ValueCodes()
        self.times = np.full((0, keep), -np.inf)

    def add(self, users: pa.Array, times: np.ndarray) -> None:
        user = self.users.encode(users)
        if len(self.users.values) > len(self.times):  # grow by doubling
            grown = np.full((max(len(self.users.values), 2 * len(self.times), 1024), self.keep),
                            -np.inf)
            grown[:len(self.times)] = self.times
            self.times = grown
        present, group = np.unique(user, return_inverse=True)
        candidate_group = np.concatenate([np.repeat(np.arange(len(present)), self.keep), group])
        candidate_time = np.concatenate([self.times[present].ravel(), times])
        order = np.lexsort((-candidate_time, candidate_group))  # by user, newest first
        g, t = candidate_group[order], candidate_time[order]
        distinct = np.ones(len(g), dtype=bool)
        distinct[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
        g, t = g[distinct], t[distinct]
        starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.append(starts, len(g))))
        kept = rank < self.keep
        newest = np.full((len(present), self.keep), -np.inf)
        newest[g[kept], rank[kept]] = t[kept]
        self.times[present] = newest


class _UserLastSplitter:
    """Split by user: a row of user ``u`` at time ``t`` goes to test when ``t`` is one of
    ``u``'s ``k`` newest distinct times, to valid when it is one of the ``k`` before, else to
    train. Rows at one time stay together (a click and its sampled negative, a user's ratings
    in one second). A user with at most ``k`` distinct times is all test, one with at most
    ``2k`` has no train rows.

    Built from every kept row's user and time (:class:`_NewestTimes`, ``16 * k`` bytes per
    user); rows are then routed by comparing their time with their user's two cut-off times
    (``16`` bytes per user kept), in any order."""

    def __init__(self, newest: _NewestTimes, user_column: str) -> None:
        k = newest.keep // 2
        self.users = newest.users
        self.user_column = user_column
        self.test_from = newest.times[:, k - 1]
        self.valid_from = newest.times[:, 2 * k - 1]

    def __call__(self, file_index: int, chunk: ParsedChunk) -> np.ndarray:
        assert chunk.time is not None
        user = self.users.encode(chunk.raw.column(self.user_column).combine_chunks())
        test = chunk.time >= self.test_from[user]
        valid = chunk.time >= self.valid_from[user]
        return np.where(test, 2, np.where(valid, 1, 0)).astype(np.int8)


class _ProbStream:
    """True click probabilities, one per line of ``path`` for each data row in order (line k
    for the k-th row: the data's line ``k + header_lines``), served for increasing lines."""

    def __init__(self, path: Path, header_lines: int = 0) -> None:
        self.path = path
        self.header_lines = header_lines
        self.chunks = read_delimited(path, BadRows("error"), delimiter=",",
                                     column_names=["probability"], quoted=False)
        self.buffer = np.zeros(0)
        self.first = 1  # line of buffer[0]

    def _read_more(self) -> bool:
        try:
            table, lines = next(self.chunks)
        except StopIteration:
            return False
        issues: list[Issue] = []
        values = floats(table.column(0).combine_chunks(), "probability", issues)
        bad = ~((values >= 0) & (values <= 1))  # also NaN: missing or not a number
        if bad.any():
            raise DataError("expected a probability in [0, 1]", file=str(self.path),
                            line=int(lines[np.flatnonzero(bad)[0]]), field="probability")
        self.buffer = np.concatenate([self.buffer, values])
        return True

    def take(self, data_lines: np.ndarray) -> np.ndarray:
        if not len(data_lines):
            return np.zeros(0, dtype=np.float32)
        lines = data_lines - self.header_lines
        last = int(lines[-1])
        while self.first + len(self.buffer) <= last:
            if not self._read_more():
                raise DataError(
                    f"has {self.first + len(self.buffer) - 1} lines but the data has a row on "
                    f"line {last + self.header_lines}", file=str(self.path),
                )
        out = self.buffer[lines - self.first].astype(np.float32)
        self.buffer = self.buffer[last + 1 - self.first :]
        self.first = last + 1
        return out


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHECKSUM_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _source_files(fmt: str, inputs: Sequence[Path]) -> list[Path]:
    """Every file the store is built from (MovieLens also reads the movies file)."""
    files = []
    for path in inputs:
        if fmt == "movielens":
            ratings = ratings_path(path)
            files += [ratings, movies_file(ratings)]
        else:
            files.append(path)
    return files


def _describe_inputs(files: Sequence[Path]) -> list[dict[str, Any]]:
    for path in files:
        if not path.is_file():
            raise DataError("no such file", file=str(path))
    return [
        {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_checksum(p)}
        for p in files
    ]


def _same_data(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Inputs are the same if sizes and checksums match (the path may have moved)."""
    return [(x["bytes"], x["sha256"]) for x in a] == [(x["bytes"], x["sha256"]) for x in b]


@dataclass
class PrepareResult:
    store: EncodedStore
    reused: bool


def _check_existing(
    out: Path, inputs: list[dict[str, Any]], settings: dict[str, Any], overwrite: bool,
) -> EncodedStore | None:
    """The reusable store in ``out``, or ``None`` after clearing ``out`` for a new one."""
    meta_path = out / META_FILE
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder", file=str(out))
    if meta_path.is_file() and not overwrite:
        store = EncodedStore.open(out)
        same_inputs = _same_data(store.meta["inputs"], inputs)
        changed = sorted(k for k in settings.keys() | store.meta["settings"].keys()
                         if settings.get(k) != store.meta["settings"].get(k))
        if same_inputs and not changed:
            return store
        what = ([] if same_inputs else ["inputs (sizes or checksums)"]) + [
            f"setting {k!r}" for k in changed
        ]
        raise DataError(
            f"holds a store built from other {', '.join(what)}; use --overwrite to rebuild "
            "it or choose another --out", file=str(out),
        )
    if out.exists() and not overwrite and not _only_an_unfinished_store(out):
        raise DataError("exists and is not an encoded store (no meta.json); use --overwrite or "
                        "choose another --out", file=str(out))
    for name in (META_FILE, ENCODER_FILE):
        (out / name).unlink(missing_ok=True)
    for name in SPLIT_NAMES:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    return None


def _only_an_unfinished_store(out: Path) -> bool:
    """Whether ``out`` holds nothing but what a failed or killed ``prepare`` leaves (split
    folders, the encoder, the cache, temporary files): rebuilt without ``--overwrite``."""
    ours = {*SPLIT_NAMES, ENCODER_FILE, CACHE_FILE}
    return all(entry.name in ours or entry.name.startswith(".") for entry in out.iterdir())


@dataclass(frozen=True)
class _Sources:
    """What every read of the inputs takes: the reader, the input files, the history log's
    files (``--history-log``) and the raw column that the split needs (the user's, for
    ``user-last``)."""

    reader: Reader
    inputs: Sequence[Path]
    history_log: Sequence[Path] = ()
    raw_column: str | None = None


def _chunks(sources: _Sources, bad_rows: BadRows) -> Iterator[tuple[int, ParsedChunk]]:
    """(file index, chunk) of every input, without the raw rows (but ``raw_column``): a store
    does not keep them, and dropping them here keeps chunks waiting in :func:`_prefetched` small
    and spares ``ParsedChunk.take`` a copy of them. Behaviour histories run on from each input
    into the next (the inputs of a log in time order, e.g. one file a day), the history log's
    events merged in."""
    reader = sources.reader
    carried = getattr(reader, "history_builder", None)  # readers that build histories
    histories = None
    if carried is not None:
        histories = (carried(bad_rows, sources.history_log) if sources.history_log
                     else carried(bad_rows))
    for index, path in enumerate(sources.inputs):
        chunks = (reader.read(path, bad_rows) if histories is None
                  else reader.read(path, bad_rows, histories=histories))
        for chunk in chunks:
            raw = (_NO_RAW if sources.raw_column is None
                   else chunk.raw.select([sources.raw_column]))
            yield index, replace(chunk, raw=raw)


def _prefetched(items: Iterator[T], depth: int = PREFETCH_DEPTH) -> Iterator[T]:
    """``items`` produced by a background thread, ``depth`` ahead (parsing releases the GIL,
    so reading the next block overlaps with encoding this one)."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put((item, None))
            queue.put((done, None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            queue.put((done, err))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, err = queue.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get(timeout=0.05)


def _last_lines(sources: _Sources, on_bad_row: OnBadRow) -> list[int]:
    last = [1] * len(sources.inputs)
    for index, chunk in _chunks(sources, BadRows(on_bad_row)):
        if len(chunk):
            last[index] = max(last[index], int(chunk.lines[-1]))
    return last


def _row_times(sources: _Sources, on_bad_row: OnBadRow) -> np.ndarray:
    """Every kept row's time, in input order (the same rows the first pass will keep)."""
    times = [np.zeros(0)]
    for _, chunk in _chunks(sources, BadRows(on_bad_row)):
        assert chunk.time is not None  # _check_split allows only readers that give times
        times.append(chunk.time)
    return np.concatenate(times)


def _newest_times(sources: _Sources, on_bad_row: OnBadRow, keep: int) -> _NewestTimes:
    """Each user's ``keep`` newest distinct times over the kept rows."""
    assert sources.raw_column is not None
    newest = _NewestTimes(keep)
    for _, chunk in _chunks(sources, BadRows(on_bad_row)):
        assert chunk.time is not None  # _check_split allows only readers that give times
        newest.add(chunk.raw.column(sources.raw_column).combine_chunks(), chunk.time)
    return newest


RowSplitter = _Splitter | _TimeSplitter | _UserLastSplitter


def _make_splitter(split: SplitOptions, sources: _Sources, on_bad_row: OnBadRow) -> RowSplitter:
    """The split rule; the chronological, time and user splits read the input once for it."""
    if split.method == "time":
        return _TimeSplitter(_row_times(sources, on_bad_row), split.ratios)
    if split.method == "user-last":
        assert sources.raw_column is not None
        return _UserLastSplitter(_newest_times(sources, on_bad_row, 2 * split.user_last),
                                 sources.raw_column)
    last = _last_lines(sources, on_bad_row) if split.method == "chronological" else None
    return _Splitter(split, last)


def _check_split(split: SplitOptions, fmt: str, n_inputs: int) -> None:
    if split.method == "files" and n_inputs not in (2, 3):
        raise ConfigError("--split files needs 2 or 3 inputs: train valid [test]")
    if split.method == "chronological" and fmt == "movielens":
        raise ConfigError("MovieLens ratings files are sorted by user, not time: a chronological "
                          "split by position would split users; use --split time (by timestamp)")
    if split.method == "time" and fmt not in TIME_FORMATS:
        raise ConfigError(f"--split time needs a time per row: --format movielens, or csv / "
                          f"parquet with --time-column; for {fmt} logs (in time order) use "
                          "--split chronological")
    if split.method == "time" and fmt != "movielens" and split.time_column is None:
        raise ConfigError(f"--split time with --format {fmt} needs --time-column NAME")
    if split.method == "user-last" and fmt not in TIME_FORMATS:
        raise ConfigError(f"--split user-last needs each row's user and time: --format "
                          f"movielens, csv or parquet, not {fmt}")
    if fmt == "movielens" and split.user_column is not None:
        raise ConfigError("MovieLens rows' users are its userId column: no --user-column")


@dataclass
class _FirstPass:
    encoder: Encoder
    rows: np.ndarray  # per split
    positives: np.ndarray  # per split
    bad_rows: BadRows


def _first_pass(
    sources: _Sources, splitter: RowSplitter, n_splits: int,
    prob_stream: _ProbStream | None, on_bad_row: OnBadRow, cache: Path, hash_buckets: int = 0,
) -> _FirstPass:
    """Parse and validate every row once: split, count, fit on train, cache the typed rows."""
    reader = sources.reader
    bad_rows = BadRows(on_bad_row)
    fitter = EncoderFitter(reader.schema, hash_buckets)
    rows = np.zeros(n_splits, dtype=np.int64)
    positives = np.zeros(n_splits, dtype=np.int64)
    writer = None
    try:
        for index, chunk in _prefetched(_chunks(sources, bad_rows)):
            which = splitter(index, chunk)
            chunk = with_dictionaries(chunk, reader.schema)
            rows += np.bincount(which, minlength=n_splits)
            positives += np.bincount(which[chunk.label > 0], minlength=n_splits)
            train = which == 0
            fitter.update(chunk if train.all() else chunk.take(train))
            batch = _to_record_batch(chunk, which, prob_stream)
            with write_errors(cache, cache):  # a full disk names the cache
                if writer is None:  # a stream: dictionaries change from batch to batch
                    writer = pa.ipc.new_stream(str(cache), batch.schema)
                writer.write_batch(batch)
    finally:
        if writer is not None:
            with write_errors(cache, cache):
                writer.close()
    return _FirstPass(fitter.finish(), rows, positives, bad_rows)


def _to_record_batch(
    chunk: ParsedChunk, which: np.ndarray, prob_stream: _ProbStream | None,
) -> pa.RecordBatch:
    columns = {f"field:{name}": col for name, col in chunk.columns.items()}
    columns.update(label=chunk.label, split=which)
    if prob_stream is not None:
        columns["prob"] = prob_stream.take(chunk.lines)
    return pa.RecordBatch.from_pydict(columns)


def _cached_chunks(
    cache: Path, schema_fields: Sequence[str],
) -> Iterator[tuple[np.ndarray, ParsedChunk, np.ndarray | None]]:
    """(split index, typed rows, probabilities) per cached block.

    Read with plain file reads, not memory-mapped, so pages of the cache do not stay resident.
    """
    if not cache.exists():
        return
    with pa.OSFile(str(cache)) as source:
        for batch in pa.ipc.open_stream(source):
            columns = {}
            for name in schema_fields:
                col = batch.column(f"field:{name}")
                columns[name] = col.to_numpy(zero_copy_only=False) if pa.types.is_floating(
                    col.type) else col
            label = batch.column("label").to_numpy()
            chunk = ParsedChunk(columns, label, np.zeros(len(label), np.int64), _NO_RAW)
            prob = batch.column("prob").to_numpy() if "prob" in batch.schema.names else None
            yield batch.column("split").to_numpy(), chunk, prob


def _user_split_columns(
    split: SplitOptions, fmt: str, reader_options: ReaderOptions,
) -> SplitOptions:
    """``split`` with the user split's time and user columns filled in from the schema's
    ``history`` (csv / parquet), checked to be columns the reader reads."""
    if split.method != "user-last" or fmt not in ("csv", "parquet"):
        return split
    spec = reader_options.tabular
    history = spec.history if spec is not None else None
    time_column = split.time_column or (history.time if history is not None else None)
    user_column = split.user_column or (history.user if history is not None else None)
    if time_column is None or user_column is None:
        raise ConfigError(f"--split user-last with --format {fmt} needs each row's time and "
                          "user: --time-column NAME and --user-column NAME, or a 'history' key "
                          "in the schema file (its time and user)")
    readable = {f.name for f in spec.fields} if spec is not None else set()
    if history is not None:
        readable |= {history.user, history.time}
    if user_column not in readable:
        raise ConfigError(f"--user-column {user_column!r} must be a field of the schema or its "
                          "history's user column")
    return replace(split, time_column=time_column, user_column=user_column)


def _described_log(fmt: str, reader_options: ReaderOptions,
                   history_log: Sequence[Path]) -> list[dict[str, Any]]:
    """The history log's files as ``meta.json`` records them (checked to exist and to be
    usable: csv / parquet with a ``history`` key)."""
    if not history_log:
        return []
    spec = reader_options.tabular
    if fmt not in ("csv", "parquet") or spec is None or spec.history is None:
        raise ConfigError("--history-log needs --format csv or parquet and a schema file with a "
                          "'history' key (the log's events feed those histories)")
    return _describe_inputs(history_log)


def prepare(
    inputs: Sequence[Path], out: Path, fmt: str, *, reader_options: ReaderOptions | None = None,
    split: SplitOptions | None = None, probs: Path | None = None,
    on_bad_row: OnBadRow = "error", overwrite: bool = False,
    history_log: Sequence[Path] = (),
) -> PrepareResult:
    """Build (or reuse) the encoded store of ``inputs`` in ``out``; see the module docstring.

    ``history_log``: files of history-only events (csv / parquet with a schema ``history``
    key): they enter the histories of later rows but are no rows (``readers.history``)."""
    reader_options = reader_options or ReaderOptions()
    split = _user_split_columns(split or SplitOptions(), fmt, reader_options)
    inputs = [Path(p) for p in inputs]
    history_log = [Path(p) for p in history_log]
    if not inputs:
        raise ConfigError("no input files")
    _check_split(split, fmt, len(inputs))
    if probs is not None and (fmt not in PROB_FORMATS or len(inputs) != 1):
        raise ConfigError("--probs needs --format criteo, csv or parquet and a single input "
                          "file")
    reader = make_reader(fmt, reader_options, time_column=split.time_column)
    described = _describe_inputs(_source_files(fmt, inputs) + ([probs] if probs else []))
    described_log = _described_log(fmt, reader_options, history_log)
    settings = json.loads(json.dumps({  # as meta.json will hold them (tuples -> lists)
        "format": fmt, **reader_options.settings(fmt), "split": split.settings(),
        "on_bad_row": on_bad_row, "schema": reader.schema.to_dict(),
        # the log by content (a key only with a log, so older stores are recognised)
        **({"history_log": [{k: f[k] for k in ("bytes", "sha256")} for f in described_log]}
           if described_log else {}),
    }))
    existing = _check_existing(out, described, settings, overwrite)
    if existing is not None:
        return PrepareResult(existing, reused=True)

    split_names = SPLIT_NAMES[: len(inputs)] if split.method == "files" else SPLIT_NAMES
    raw_user = split.user_column if fmt != "movielens" else MOVIELENS_USER
    sources = _Sources(reader, inputs, history_log,
                       raw_user if split.method == "user-last" else None)
    splitter = _make_splitter(split, sources, on_bad_row)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / CACHE_FILE
    try:
        prob_stream = _ProbStream(probs, PROB_FORMATS[fmt]) if probs is not None else None
        first = _first_pass(sources, splitter, len(split_names), prob_stream,
                            on_bad_row, cache, reader_options.hash_buckets)
        _write_splits(out, split_names, first, cache, with_prob=probs is not None,
                      fields=[f.name for f in reader.schema.fields])
    finally:
        cache.unlink(missing_ok=True)

    write_json(out / ENCODER_FILE, first.encoder.to_dict(), indent=None)  # large
    meta = {
        "format_version": STORE_FORMAT_VERSION,
        "format": fmt,
        "inputs": described,
        **({"history_log": described_log} if described_log else {}),
        "settings": settings,
        "feature_map": first.encoder.feature_map.to_dict(),
        "splits": {
            name: {
                "rows": int(n), "positives": int(p),
                "positive_rate": float(p / n) if n else None,
                "has_prob": probs is not None,
            }
            for name, n, p in zip(split_names, first.rows, first.positives, strict=True)
        },
        "skipped": first.bad_rows.to_dict(),
    }
    write_json(out / META_FILE, meta)
    return PrepareResult(EncodedStore.open(out), reused=False)


def _write_splits(
    out: Path, split_names: Sequence[str], first: _FirstPass, cache: Path, with_prob: bool,
    fields: Sequence[str],
) -> None:
    """Second pass: encode the cached rows into each split's pre-allocated arrays."""
    fmap = first.encoder.feature_map
    with contextlib.ExitStack() as stack:  # an error removes the arrays written so far
        writers = [
            stack.enter_context(SplitWriter(
                out / name, int(n), len(fmap.categorical), len(fmap.numeric),
                tuple(f.max_len for f in fmap.sequence), with_prob,
            ))
            for name, n in zip(split_names, first.rows, strict=True)
        ]
        for which, chunk, prob in _cached_chunks(cache, fields):
            encoded = replace(first.encoder.encode(chunk), prob=prob)
            for k, writer in enumerate(writers):
                mask = which == k
                writer.append(encoded if mask.all() else encoded.map(lambda a, m=mask: a[m]))
