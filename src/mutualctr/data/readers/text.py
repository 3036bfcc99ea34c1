"""Streaming reader for delimited text files (CSV, TSV, space-separated; also ``.gz``).

pyarrow's streaming CSV reader parses blocks of ``block_size`` bytes, so memory does not grow with
the file. Every column is read as raw bytes (``binary``): decoding and type checks happen in
:mod:`mutualctr.data.readers.columns`, where a failure can name the row. Rows with the wrong
number of columns are reported by the parser through ``invalid_row_handler`` with their line
number (single-threaded parsing keeps line numbers known), and are then missing from the batch;
the line number of every kept row is reconstructed from the lines the parser dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mutualctr.data.readers.base import BadRows
from mutualctr.errors import DataError

DEFAULT_BLOCK_SIZE = 8 << 20


def read_delimited(
    path: Path,
    bad_rows: BadRows,
    *,
    delimiter: str,
    column_names: Sequence[str] | None = None,
    quoted: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield ``(table of binary columns, 1-based line number of each row)`` per block.

    Args:
        column_names: the columns of a file without header; ``None``: the first line is one.
        quoted: whether ``"`` quotes values (off for Criteo-style TSV).
    """
    dropped: list[int] = []  # lines the parser rejected and that no batch has passed yet
    failed: list[tuple[int, str]] = []  # error mode: (line, reason) of rejected lines
    dropped_total = 0

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        # Exceptions raised here are swallowed by pyarrow: record, and raise after the batch.
        nonlocal dropped_total
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        if bad_rows.mode == "error":
            failed.append((row.number, reason))
        else:
            bad_rows.report(path, row.number, None, reason)
        dropped_total += 1
        if row.number is not None:
            dropped.append(row.number)
        return "skip"

    header_lines = 0 if column_names is not None else 1
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(
                block_size=block_size, use_threads=False,
                column_names=list(column_names) if column_names is not None else None,
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char='"' if quoted else False,
                ignore_empty_lines=False, invalid_row_handler=on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=_all_binary(path, delimiter, column_names, quoted),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as err:
        raise DataError(_arrow_reason(err), file=str(path), line=1) from None
    next_line = header_lines + 1
    rows_seen = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as err:
            raise DataError(_arrow_reason(err), file=str(path), line=next_line) from None
        lines, next_line = _kept_lines(next_line, batch.num_rows, dropped)
        rows_seen += batch.num_rows
        table = pa.Table.from_batches([batch])
        if failed:
            line, reason = min(failed)
            before = int(np.searchsorted(lines, line))  # rows before it are checked first
            if before:
                yield table.slice(0, before), lines[:before]
            raise DataError(reason, file=str(path), line=line)
        yield table, lines
    if rows_seen == 0 and dropped_total == 0:
        raise DataError("file has no data rows", file=str(path), line=header_lines + 1)


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


def header_of(path: Path, delimiter: str, quoted: bool = True) -> list[str]:
    """The column names in the file's first line."""
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=1 << 16, use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, quote_char='"' if quoted else False,
                invalid_row_handler=lambda _row: "skip",
            ),
        )
    except pa.ArrowInvalid as err:
        raise DataError(_arrow_reason(err), file=str(path), line=1) from None
    except UnicodeDecodeError:
        raise DataError("header is not valid UTF-8", file=str(path), line=1) from None
    return list(reader.schema.names)


def _arrow_reason(err: pa.ArrowInvalid) -> str:
    text = str(err)
    if "Empty CSV file" in text:
        return "file is empty"
    return f"cannot parse: {text}"
