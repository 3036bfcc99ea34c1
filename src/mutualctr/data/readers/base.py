"""What every reader yields, and how bad rows are reported or skipped.

A reader turns one raw file into :class:`ParsedChunk` s: typed columns named after its schema's
fields, the labels, and the 1-based line (or row) number of every row, for error messages and
for the per-row split decision; readers that know when a row happened also give its time (a
number, e.g. Unix seconds) for ``--split time``. Columns by field type:

* categorical: ``pa.StringArray`` without nulls, the empty string being the missing value, or
  ``pa.Int64Array`` (Criteo's discretised integers), null being the missing value;
* numeric: ``float64`` numpy array, ``NaN`` where missing;
* sequence: ``pa.StringArray`` holding the raw, separator-joined tokens ("" when missing), or
  a list array of tokens (Parquet ``list<...>`` columns, behaviour histories: see
  ``readers.history``), its values text or dictionary-encoded text; an empty list has no
  token (all padding once encoded).

A reader called with ``allow_unlabelled=True`` (prediction inputs) also accepts a file without
the label column, recognised per format by its header or its number of columns; its labels are
``NaN`` (unknown). Without it, such a file is refused as training data always was.

Bad rows are collected per chunk as :class:`Issue` s and handed to :class:`BadRows`, which
raises a :class:`~mutualctr.errors.DataError` for the earliest one (``on_bad_row="error"``) or
counts and drops them (``"skip"``).

Rows may also come from memory (a data frame or an Arrow table, for scoring them without a
file): ``Reader.read_table`` takes a table whose columns are the file's, named and valued as
the file reader reads them (its raw table), and gives the same chunks through the same parse,
so the same checks. Such rows have :data:`TABLE` as their path and their 1-based row number as
their line; errors about them name the row by its 0-based position instead (:func:`located`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa

from mutualctr.data.schema import Schema
from mutualctr.errors import DataError

OnBadRow = Literal["error", "skip"]
ON_BAD_ROW_CHOICES: tuple[str, ...] = ("error", "skip")
MAX_EXAMPLES = 20
MAX_SHOWN_VALUE = 60
TABLE = Path("<table>")  # the path of rows given in memory (Reader.read_table)
TABLE_CHUNK_ROWS = 1 << 16  # rows of an in-memory table parsed at a time


@dataclass
class ParsedChunk:
    """Consecutive rows of one file, validated and typed (see the module docstring)."""

    columns: dict[str, Any]
    label: np.ndarray  # float32 [N]
    lines: np.ndarray  # int64 [N], 1-based line (row) numbers in the file
    raw: pa.Table  # the raw rows, as read, for writing predictions next to them (or a table
    # without columns where they are not kept)
    time: np.ndarray | None = None  # float64 [N] when the reader knows each row's time

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, mask: np.ndarray) -> ParsedChunk:
        """The rows where ``mask`` is true."""
        arrow_mask = pa.array(mask)
        return ParsedChunk(
            columns={
                name: col[mask] if isinstance(col, np.ndarray) else col.filter(arrow_mask)
                for name, col in self.columns.items()
            },
            label=self.label[mask],
            lines=self.lines[mask],
            raw=self.raw.filter(arrow_mask) if self.raw.num_columns else self.raw,
            time=None if self.time is None else self.time[mask],
        )

    def select(self, rows: np.ndarray) -> ParsedChunk:
        """The rows at the indices ``rows``, in that order."""
        indices = pa.array(rows, pa.int64())
        return ParsedChunk(
            columns={
                name: col[rows] if isinstance(col, np.ndarray) else col.take(indices)
                for name, col in self.columns.items()
            },
            label=self.label[rows],
            lines=self.lines[rows],
            raw=self.raw.take(indices) if self.raw.num_columns else self.raw,
            time=None if self.time is None else self.time[rows],
        )

    @staticmethod
    def concat(first: ParsedChunk, second: ParsedChunk) -> ParsedChunk:
        """The rows of ``first`` followed by those of ``second`` (same columns)."""
        def joined(a: Any, b: Any) -> Any:
            return np.concatenate([a, b]) if isinstance(a, np.ndarray) else pa.concat_arrays(
                [a, b])

        return ParsedChunk(
            columns={name: joined(col, second.columns[name])
                     for name, col in first.columns.items()},
            label=np.concatenate([first.label, second.label]),
            lines=np.concatenate([first.lines, second.lines]),
            raw=pa.concat_tables([first.raw, second.raw]) if first.raw.num_columns
            else first.raw,
            time=None if first.time is None or second.time is None
            else np.concatenate([first.time, second.time]),
        )


class Reader(Protocol):
    """One raw format. ``schema`` names the encoded fields (with default min-counts).

    ``read_table`` parses rows given in memory, with the columns of the format's files (the
    label column optional): see the module docstring.
    """

    schema: Schema

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]: ...

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]: ...


def table_chunks(
    table: pa.Table, rows: int = TABLE_CHUNK_ROWS,
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """An in-memory table as the file readers' ``(raw table, 1-based line numbers)`` pairs:
    slices of ``rows`` rows (no copy), numbered by their 1-based row number."""
    for start in range(0, table.num_rows, rows):
        part = table.slice(start, rows)
        yield part, np.arange(start + 1, start + 1 + part.num_rows, dtype=np.int64)


def located(
    message: str, path: Path, line: int | None = None, field: str | None = None,
) -> DataError:
    """The error about ``line`` of ``path``: for rows given in memory (``path`` is
    :data:`TABLE`, ``line`` the 1-based row number) it names the 0-based row instead, the
    position a data frame's ``iloc`` takes."""
    if path == TABLE:
        return DataError(message, row=None if line is None else line - 1, field=field)
    return DataError(message, file=str(path), line=line, field=field)


@dataclass
class Issue:
    """Rows of a chunk (``mask``) that fail one check of one field (``None``: the whole row)."""

    mask: np.ndarray
    field: str | None
    reason: str
    values: Any = None  # the offending raw values (aligned with the chunk), for messages


def _shown(value: Any) -> str:
    if isinstance(value, pa.Scalar):
        value = value.as_py()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 3] + "..."


@dataclass
class BadRows:
    """Policy and tally for bad rows over one ``data prepare`` run."""

    mode: OnBadRow = "error"
    count: int = 0
    by_reason: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    filtered: Counter = field(default_factory=Counter)  # rows left out on purpose, by reason

    def note_filtered(self, reason: str, rows: int) -> None:
        """Rows a reader leaves out by the user's choice (e.g. a dropped middle rating)."""
        if rows:
            self.filtered[reason] += rows

    def report(self, path: Path, line: int | None, field_name: str | None, message: str) -> None:
        """One bad row found outside a chunk (e.g. by the CSV parser)."""
        if self.mode == "error":
            raise DataError(message, file=str(path), line=line, field=field_name)
        self._record(path, line, field_name, message, message)

    def _record(
        self, path: Path, line: int | None, field_name: str | None, kind: str, message: str,
    ) -> None:
        self.count += 1
        self.by_reason[f"{field_name}: {kind}" if field_name else kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {"file": str(path), "line": line, "field": field_name, "reason": message}
            )

    def check(self, path: Path, lines: np.ndarray, issues: list[Issue]) -> np.ndarray:
        """Rows to keep. In error mode, raise for the earliest bad line of the chunk."""
        keep = np.ones(len(lines), dtype=bool)
        first: dict[int, tuple[Issue, int]] = {}  # row -> its first issue
        for issue in issues:
            for row in np.flatnonzero(issue.mask & keep):
                first[int(row)] = (issue, int(row))
                keep[row] = False
        if not first:
            return keep
        rows = sorted(first, key=lambda r: lines[r])
        for row in rows if self.mode == "skip" else rows[:1]:
            issue, _ = first[row]
            message = issue.reason
            if issue.values is not None:
                message += f", got {_shown(issue.values[row])}"
            if self.mode == "error":
                raise located(message, path, int(lines[row]), issue.field)
            self._record(path, int(lines[row]), issue.field, issue.reason, message)
        return keep

    def to_dict(self) -> dict[str, Any]:
        """Tallies for ``meta.json``; examples (the first found, at most ``MAX_EXAMPLES``) in
        file order, then line order."""
        files = list(dict.fromkeys(e["file"] for e in self.examples))
        examples = sorted(self.examples, key=lambda e: (files.index(e["file"]), e["line"] or 0))
        return {
            "rows": self.count, "by_reason": dict(self.by_reason), "examples": examples,
            "filtered": dict(self.filtered),
        }


def require_columns(
    path: Path, header: Iterable[str], needed: Iterable[str], kind: str = "",
) -> None:
    """Refuse a file whose header lacks a ``needed`` column: a :class:`DataError` naming the
    file, line 1 (the header; row 1 in Parquet) and the first missing column as the field (an
    in-memory table's: the field alone)."""
    present = set(header)
    missing = [name for name in needed if name not in present]
    if missing:
        what = f"{kind} columns" if kind else "columns"
        message = f"missing {what}: {', '.join(missing)}"
        if path == TABLE:
            raise DataError(message, field=missing[0])
        raise DataError(message, file=str(path), line=1, field=missing[0])


def checked_chunk(
    path: Path, bad_rows: BadRows, issues: list[Issue], columns: dict[str, Any],
    label: np.ndarray, lines: np.ndarray, raw: pa.Table, time: np.ndarray | None = None,
) -> ParsedChunk:
    """The chunk without the rows that have issues (or a DataError, in error mode)."""
    keep = bad_rows.check(path, lines, issues)
    chunk = ParsedChunk(columns, label, lines, raw, time)
    return chunk if keep.all() else chunk.take(keep)
