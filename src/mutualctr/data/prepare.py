"""``data prepare``: raw files -> split -> encoder fitted on train -> encoded store.

Two streaming passes, so memory does not grow with the input's size. The first parses and
validates the raw files (reading and checking run a chunk ahead in a background thread),
decides each row's split, counts rows, fits the encoder on train rows and caches the typed,
dictionary-encoded rows in an Arrow IPC stream beside the store; the second reads that cache
(no parsing) and encodes every row into ``.npy`` files of known shape, written front to back.
A chronological split needs one more parse first, to find where the input ends; a split by
time one more parse that keeps only each row's time (8 bytes a row), to find the two cut-off
times. The random split is decided per row from a hash of ``(seed, file, line)``, so it needs no
state and does not depend on chunking.

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

SplitMethod = Literal["random", "chronological", "time", "files"]
SPLIT_METHODS: tuple[str, ...] = ("random", "chronological", "time", "files")
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
    * ``files``: one input file per split, in the order train, valid[, test].
    """

    method: SplitMethod = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    time_column: str | None = None

    def __post_init__(self) -> None:
        if self.method not in SPLIT_METHODS:
            raise ConfigError(f"split must be one of {SPLIT_METHODS}, got {self.method!r}")
        if len(self.ratios) != 3 or min(self.ratios) < 0 or sum(self.ratios) <= 0:
            raise ConfigError(f"split ratios must be 3 non-negative numbers, got {self.ratios}")
        if self.time_column is not None and self.method != "time":
            raise ConfigError("a time column is only used by --split time")

    def settings(self) -> dict[str, Any]:
        """As recorded in ``meta.json`` (no ``time_column`` key when there is none, so stores
        built before it existed are still recognised)."""
        return {k: v for k, v in asdict(self).items() if k != "time_column" or v is not None}


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


def _chunks(
    reader: Reader, inputs: Sequence[Path], bad_rows: BadRows,
) -> Iterator[tuple[int, ParsedChunk]]:
    """(file index, chunk) of every input, without the raw rows: a store does not keep them,
    and dropping them here keeps chunks waiting in :func:`_prefetched` small and spares
    ``ParsedChunk.take`` a copy of them. Behaviour histories run on from each input into the
    next (the inputs of a log in time order, e.g. one file a day)."""
    carried = getattr(reader, "history_builder", None)  # readers that build histories
    histories = None if carried is None else carried(bad_rows)
    for index, path in enumerate(inputs):
        chunks = (reader.read(path, bad_rows) if histories is None
                  else reader.read(path, bad_rows, histories=histories))
        for chunk in chunks:
            yield index, replace(chunk, raw=_NO_RAW)


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


def _last_lines(reader: Reader, inputs: Sequence[Path], on_bad_row: OnBadRow) -> list[int]:
    last = [1] * len(inputs)
    for index, chunk in _chunks(reader, inputs, BadRows(on_bad_row)):
        if len(chunk):
            last[index] = max(last[index], int(chunk.lines[-1]))
    return last


def _row_times(reader: Reader, inputs: Sequence[Path], on_bad_row: OnBadRow) -> np.ndarray:
    """Every kept row's time, in input order (the same rows the first pass will keep)."""
    times = [np.zeros(0)]
    for _, chunk in _chunks(reader, inputs, BadRows(on_bad_row)):
        assert chunk.time is not None  # _check_split allows only readers that give times
        times.append(chunk.time)
    return np.concatenate(times)


def _make_splitter(
    split: SplitOptions, reader: Reader, inputs: Sequence[Path], on_bad_row: OnBadRow,
) -> _Splitter | _TimeSplitter:
    """The split rule; the chronological and time splits read the input once for it."""
    if split.method == "time":
        return _TimeSplitter(_row_times(reader, inputs, on_bad_row), split.ratios)
    last = _last_lines(reader, inputs, on_bad_row) if split.method == "chronological" else None
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


@dataclass
class _FirstPass:
    encoder: Encoder
    rows: np.ndarray  # per split
    positives: np.ndarray  # per split
    bad_rows: BadRows


def _first_pass(
    reader: Reader, inputs: Sequence[Path], splitter: _Splitter | _TimeSplitter, n_splits: int,
    prob_stream: _ProbStream | None, on_bad_row: OnBadRow, cache: Path, hash_buckets: int = 0,
) -> _FirstPass:
    """Parse and validate every row once: split, count, fit on train, cache the typed rows."""
    bad_rows = BadRows(on_bad_row)
    fitter = EncoderFitter(reader.schema, hash_buckets)
    rows = np.zeros(n_splits, dtype=np.int64)
    positives = np.zeros(n_splits, dtype=np.int64)
    writer = None
    try:
        for index, chunk in _prefetched(_chunks(reader, inputs, bad_rows)):
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


def prepare(
    inputs: Sequence[Path], out: Path, fmt: str, *, reader_options: ReaderOptions | None = None,
    split: SplitOptions | None = None, probs: Path | None = None,
    on_bad_row: OnBadRow = "error", overwrite: bool = False,
) -> PrepareResult:
    """Build (or reuse) the encoded store of ``inputs`` in ``out``; see the module docstring."""
    reader_options = reader_options or ReaderOptions()
    split = split or SplitOptions()
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ConfigError("no input files")
    _check_split(split, fmt, len(inputs))
    if probs is not None and (fmt not in PROB_FORMATS or len(inputs) != 1):
        raise ConfigError("--probs needs --format criteo, csv or parquet and a single input "
                          "file")
    reader = make_reader(fmt, reader_options, time_column=split.time_column)
    described = _describe_inputs(_source_files(fmt, inputs) + ([probs] if probs else []))
    settings = json.loads(json.dumps({  # as meta.json will hold them (tuples -> lists)
        "format": fmt, **reader_options.settings(fmt), "split": split.settings(),
        "on_bad_row": on_bad_row, "schema": reader.schema.to_dict(),
    }))
    existing = _check_existing(out, described, settings, overwrite)
    if existing is not None:
        return PrepareResult(existing, reused=True)

    split_names = SPLIT_NAMES[: len(inputs)] if split.method == "files" else SPLIT_NAMES
    splitter = _make_splitter(split, reader, inputs, on_bad_row)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / CACHE_FILE
    try:
        prob_stream = _ProbStream(probs, PROB_FORMATS[fmt]) if probs is not None else None
        first = _first_pass(reader, inputs, splitter, len(split_names), prob_stream,
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
