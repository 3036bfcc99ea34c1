"""Streaming reader for delimited text files (CSV, TSV, space-separated; also ``.gz``).

pyarrow's streaming CSV reader parses blocks of ``block_size`` bytes, so memory does not grow with
the file. Every column is read as raw bytes (``binary``): decoding and type checks happen in
:mod:`mutualctr.data.readers.columns`, where a failure can name the row. Rows with the wrong
number of columns are reported by the parser through ``invalid_row_handler`` with their line
number (single-threaded parsing keeps line numbers known), and are then missing from the batch;
the line number of every kept row is reconstructed from the lines the parser dropped.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mutualctr.data.readers.base import BadRows
from mutualctr.errors import DataError

DEFAULT_BLOCK_SIZE = 1 << 20
DEFAULT_CHUNK_ROWS = 1 << 16
# A line longer than this is an error rather than a block of its size: a file without line
# breaks (binary data, a wrong format) would otherwise be read whole.
MAX_LINE_BYTES = 1 << 28


def read_delimited(
    path: Path,
    bad_rows: BadRows,
    *,
    delimiter: str,
    column_names: Sequence[str] | None = None,
    quoted: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield ``(table of binary columns, 1-based line number of each row)`` per chunk.

    Args:
        column_names: the columns of a file without header; ``None``: the first line is one.
        quoted: whether ``"`` quotes values (off for Criteo-style TSV).
        block_size: bytes parsed at a time. pyarrow reads up to ~32 blocks ahead, so this
            bounds memory; small blocks also parse faster (they stay in cache).
        chunk_rows: consecutive blocks are joined into chunks of at least this many rows, so
            the per-chunk work downstream is amortised.
    """
    yield from _coalesced(
        _blocks(path, bad_rows, delimiter, column_names, quoted, block_size), chunk_rows
    )


def _coalesced(
    blocks: Iterator[tuple[pa.Table, np.ndarray]], chunk_rows: int,
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    tables: list[pa.Table] = []
    lines: list[np.ndarray] = []
    try:
        for table, block_lines in blocks:
            tables.append(table)
            lines.append(block_lines)
            if sum(t.num_rows for t in tables) >= chunk_rows:
                yield pa.concat_tables(tables), np.concatenate(lines)
                tables, lines = [], []
    except DataError:
        if tables:  # the rows before the failure are checked first
            yield pa.concat_tables(tables), np.concatenate(lines)
        raise
    if tables:
        yield pa.concat_tables(tables), np.concatenate(lines)


def _blocks(
    path: Path, bad_rows: BadRows, delimiter: str, column_names: Sequence[str] | None,
    quoted: bool, block_size: int,
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """The parse, restarted with a larger block after the rows already yielded whenever a line
    is longer than a block (pyarrow's "straddling object" error): a long line costs memory only
    while it is read, and the lines of every row stay known."""
    first_line = (0 if column_names is not None else 1) + 1
    reported: set[int] = set()  # skip mode: lines reported by an earlier attempt
    while True:
        parse = _BlockParse(path, bad_rows, delimiter, column_names, quoted, block_size,
                            first_line, reported)
        try:
            yield from parse
            return
        except _LineLongerThanBlockError:
            first_line = parse.next_line
            block_size = _block_for_long_line(path, first_line, block_size)


class _LineLongerThanBlockError(Exception):
    """A line from the current position on is longer than the parser's block."""


def _block_for_long_line(path: Path, first_line: int, block_size: int) -> int:
    """A block size holding the first line from ``first_line`` on that is longer than
    ``block_size`` bytes; a DataError naming the line if it is over :data:`MAX_LINE_BYTES`."""
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number >= first_line and len(raw) > block_size // 2:
                if len(raw) > MAX_LINE_BYTES:
                    length = len(raw.rstrip(b"\r\n"))
                    raise DataError(
                        f"line is {length:,} bytes, longer than the "
                        f"{MAX_LINE_BYTES:,} a line may have (is this a line-delimited text "
                        "file?)",
                        file=str(path), line=number)
                return max(block_size * 2, 1 << (2 * len(raw) - 1).bit_length())
    if block_size >= MAX_LINE_BYTES:  # a quoted value spanning lines, so long: likely unclosed
        raise DataError(f"a row from this line on is longer than {MAX_LINE_BYTES:,} bytes "
                        "(an unclosed quote?)", file=str(path), line=first_line)
    return block_size * 2


class _BlockParse:
    """One pass of pyarrow's streaming parser from line ``first_line`` on, yielding
    ``(table, line numbers)`` per block; ``next_line`` is the first line not yet yielded."""

    def __init__(
        self, path: Path, bad_rows: BadRows, delimiter: str,
        column_names: Sequence[str] | None, quoted: bool, block_size: int, first_line: int,
        reported: set[int],
    ) -> None:
        self.path, self.bad_rows, self.reported = path, bad_rows, reported
        self.delimiter, self.column_names, self.quoted = delimiter, column_names, quoted
        self.block_size = block_size
        self.header_lines = 0 if column_names is not None else 1
        self.next_line = first_line
        self.dropped: list[int] = []  # lines the parser rejected and no batch has passed yet
        self.failed: list[tuple[int, str]] = []  # error mode: (line, reason) of rejected lines
        self.dropped_total = 0

    def _on_invalid(self, row: pa_csv.InvalidRow) -> str:
        # Exceptions raised here are swallowed by pyarrow: record, and raise after the batch.
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        if self.bad_rows.mode == "error":
            self.failed.append((row.number, reason))
        elif row.number not in self.reported:
            self.bad_rows.report(self.path, row.number, None, reason)
            if row.number is not None:
                self.reported.add(row.number)
        self.dropped_total += 1
        if row.number is not None:
            self.dropped.append(row.number)
        return "skip"

    def _open_reader(self) -> pa_csv.CSVStreamingReader:
        column_names = self.column_names
        return pa_csv.open_csv(
            self.path,
            read_options=pa_csv.ReadOptions(
                block_size=self.block_size, use_threads=False,
                column_names=list(column_names) if column_names is not None else None,
                skip_rows_after_names=self.next_line - 1 - self.header_lines,
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=self.delimiter, quote_char='"' if self.quoted else False,
                ignore_empty_lines=False, invalid_row_handler=self._on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=_all_binary(self.path, self.delimiter, column_names, self.quoted),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )

    def _error(self, err: pa.ArrowInvalid) -> Exception:
        if "straddling object" in str(err):
            return _LineLongerThanBlockError()
        return _located(err, self.path, self.delimiter, self.quoted, self.column_names)

    def __iter__(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        try:
            reader = self._open_reader()
        except pa.ArrowInvalid as err:
            raise self._error(err) from None
        rows_seen = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as err:
                raise self._error(err) from None
            lines, self.next_line = _kept_lines(self.next_line, batch.num_rows, self.dropped)
            rows_seen += batch.num_rows
            table = pa.Table.from_batches([batch])
            if self.failed:
                line, reason = min(self.failed)
                before = int(np.searchsorted(lines, line))  # rows before it are checked first
                if before:
                    yield table.slice(0, before), lines[:before]
                raise DataError(reason, file=str(self.path), line=line)
            yield table, lines
        if self.failed:  # rejected lines after the last batch (or in a file with no good row)
            line, reason = min(self.failed)
            raise DataError(reason, file=str(self.path), line=line)
        if rows_seen == 0 and self.dropped_total == 0 and not self.reported \
                and self.next_line == self.header_lines + 1:
            raise DataError("file has no data rows", file=str(self.path),
                            line=self.header_lines + 1)


def _kept_lines(next_line: int, n: int, dropped: list[int]) -> tuple[np.ndarray, int]:
    """Line numbers of the next ``n`` kept rows from ``next_line`` on, skipping ``dropped``."""
    span = np.arange(next_line, next_line + n + len(dropped), dtype=np.int64)
    lines = span[~np.isin(span, dropped)][:n]
    end = int(lines[-1]) + 1 if n else next_line
    dropped[:] = [line for line in dropped if line >= end]
    return lines, end


def _all_binary(
    path: Path, delimiter: str, column_names: Sequence[str] | None, quoted: bool,
) -> dict[str, pa.DataType]:
    """Column types mapping every column to ``binary``; reads the header when there is one."""
    if column_names is None:
        column_names = header_of(path, delimiter, quoted)
    return dict.fromkeys(column_names, pa.binary())


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _split_line(text: str, delimiter: str, quoted: bool) -> list[str]:
    if not text:
        return [""]
    if not quoted:
        return text.split(delimiter)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))  # a long value is no error here
    try:
        return next(csv.reader([text], delimiter=delimiter))
    finally:
        csv.field_size_limit(limit)


def header_of(path: Path, delimiter: str, quoted: bool = True) -> list[str]:
    """The column names in the file's first line."""
    with _open(path) as handle:
        first = handle.readline()
    if not first:
        raise DataError("file is empty", file=str(path), line=1)
    try:
        text = first.rstrip(b"\r\n").decode("utf-8-sig")  # as pyarrow, drop a BOM
    except UnicodeDecodeError:
        raise DataError("header is not valid UTF-8", file=str(path), line=1) from None
    return _split_line(text, delimiter, quoted)


def first_line_width(path: Path, delimiter: str, quoted: bool = True) -> int:
    """Number of columns in the file's first line (``0`` if the file is empty), for telling a
    headerless file with a label column from one without. Bytes are read as Latin-1, so this
    never fails: the parse that follows reports bad bytes with their line."""
    with _open(path) as handle:
        first = handle.readline().rstrip(b"\r\n")
    return len(_split_line(first.decode("latin-1"), delimiter, quoted)) if first else 0


def _located(
    err: pa.ArrowInvalid, path: Path, delimiter: str, quoted: bool,
    column_names: Sequence[str] | None,
) -> DataError:
    """A DataError for a parser failure, with the line found by a plain rescan of the file.

    pyarrow stops (instead of calling ``invalid_row_handler``) when a row has the wrong number
    of columns *and* bytes that are not UTF-8, and says neither where nor why. Such a row
    stops reading in skip mode too, and is reported even if an earlier row of the same block
    (``block_size`` bytes) is bad in another way.
    """
    reason = _arrow_reason(err)
    if reason == "file is empty":
        return DataError(reason, file=str(path), line=1)
    expected = len(column_names) if column_names is not None else None
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            width = len(_split_line(line.decode("latin-1"), delimiter, quoted)) if line else 0
            if expected is None:
                expected = width
            elif line and width != expected and not _is_utf8(line):
                return DataError(f"expected {expected} columns, found {width} (and bytes that "
                                 "are not UTF-8)", file=str(path), line=number)
    return DataError(reason, file=str(path))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _arrow_reason(err: pa.ArrowInvalid) -> str:
    text = str(err)
    if "Empty CSV file" in text:
        return "file is empty"
    return f"cannot parse: {text}"
