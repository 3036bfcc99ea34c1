"""Any CSV or Parquet file, described by a schema YAML.

Schema file::

    label: clicked                 # the label column, values 0/1 (see label_values)
    delimiter: ","                 # CSV only
    fields:                        # the columns to use, in order; other columns are ignored
      - {name: user, type: categorical, min_count: 2}
      - {name: price, type: numeric}
      - {name: tags, type: sequence, separator: "|", max_len: 5}
    history:                       # optional: behaviour histories from this log (readers.history)
      user: user                   # the column of user ids
      time: ts                     # the column of event times (numbers)
      columns: [item, category]    # categorical fields; each gives a sequence field hist_<column>
      max_len: 50                  # newest events kept
      events: positive             # or all; required when the labels hold both 0 and 1

Unknown keys are errors naming the key. CSV files need a header line; Parquet columns may be of
any type that casts to text (categorical), to a number (numeric) or, for a sequence, is text
(split on the separator) or a list of values that cast to text (``list<...>``: a missing list
is the missing token, an empty list has no token). In Parquet files the "line" of an error is
the 1-based row number. A field may name another field's vocabulary (``share_vocab``); the
history fields share their column's.

A prediction input may have no label column; it may also be a table in memory (``read_table``),
its columns named and typed as a Parquet file's may be. ``time_column`` (``--time-column`` of
``--split time``) names a column of numbers (e.g. Unix seconds) giving each row's time; a row
whose time is missing or not a number is a bad row, for the history's time column as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mutualctr.config import from_dict, load_yaml, to_dict
from mutualctr.data.readers import columns
from mutualctr.data.readers.base import (
    TABLE,
    BadRows,
    Issue,
    ParsedChunk,
    located,
    require_columns,
    table_chunks,
)
from mutualctr.data.readers.criteo import discretize
from mutualctr.data.readers.history import HistoryBuilder, HistorySpec
from mutualctr.data.readers.text import DEFAULT_BLOCK_SIZE, header_of, read_delimited
from mutualctr.data.schema import FieldSpec, Schema
from mutualctr.errors import ConfigError, DataError

PARQUET_BATCH_ROWS = 1 << 16


@dataclass(frozen=True)
class TabularSpec:
    label: str
    fields: tuple[FieldSpec, ...]
    delimiter: str = ","
    label_values: dict[str, float] = field(
        default_factory=lambda: {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}
    )
    history: HistorySpec | None = None

    def __post_init__(self) -> None:
        if self.history is not None:
            kinds = {f.name: f.type for f in self.fields}
            for name in self.history.columns:
                if kinds.get(name) != "categorical":
                    raise ValueError(f"history: column {name!r} must be a categorical field")
        self.schema()  # checks field names and share_vocab

    def schema(self, min_count: int | None = None) -> Schema:
        """The fields (each given ``min_count`` if set), then the history fields."""
        fields = self.fields if min_count is None else tuple(
            replace(f, min_count=min_count) for f in self.fields)
        history = self.history.fields if self.history is not None else ()
        return Schema(fields=fields + history, label=self.label)

    def history_log_spec(self) -> TabularSpec:
        """How a history log is read: the history's user and columns as categorical fields,
        the label (optional in the file) and the delimiter of the rows."""
        assert self.history is not None
        names = dict.fromkeys([self.history.user, *self.history.columns])
        return TabularSpec(self.label, tuple(FieldSpec(n, "categorical") for n in names),
                           self.delimiter, self.label_values)

    def settings(self) -> dict[str, Any]:
        """As recorded in ``meta.json`` (no ``history`` key without one, and fields as
        ``FieldSpec.to_dict`` gives them, so stores built before either existed are reused)."""
        recorded = to_dict(self)
        recorded["fields"] = [f.to_dict() for f in self.fields]
        if self.history is None:
            del recorded["history"]
        return recorded


def load_spec(path: Path) -> TabularSpec:
    spec = from_dict(TabularSpec, load_yaml(path))
    if not spec.fields:
        raise ConfigError(f"schema file {path}: 'fields' is empty")
    if len(spec.delimiter) != 1:
        raise ConfigError(f"schema file {path}: delimiter must be one character")
    return spec


class TabularReader:
    def __init__(
        self, spec: TabularSpec, parquet: bool, min_count: int | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE, time_column: str | None = None,
    ) -> None:
        self.spec = spec
        self.parquet = parquet
        self.time_column = time_column
        self.block_size = block_size
        self.schema = spec.schema(min_count)

    def _needed(self, labelled: bool) -> list[str]:
        names = [self.spec.label] if labelled else []
        names += [f.name for f in self.spec.fields]
        if self.time_column is not None:
            names.append(self.time_column)
        if self.spec.history is not None:
            names += [self.spec.history.user, self.spec.history.time]
        return list(dict.fromkeys(names))

    def _columns(self, path: Path, names: Sequence[str], allow_unlabelled: bool) -> list[str]:
        """The columns to read (the label only when the file has it); missing ones are errors."""
        needed = self._needed(labelled=self.spec.label in names or not allow_unlabelled)
        require_columns(path, names, needed)
        return needed

    def _parquet_chunks(
        self, path: Path, allow_unlabelled: bool,
    ) -> Iterator[tuple[pa.Table, np.ndarray]]:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(f"not a readable Parquet file: {err}", file=str(path)) from None
        needed = self._columns(path, parquet.schema_arrow.names, allow_unlabelled)
        if parquet.metadata.num_rows == 0:
            raise DataError("file has no data rows", file=str(path), line=1)
        start = 1
        for batch in parquet.iter_batches(PARQUET_BATCH_ROWS, columns=needed):
            yield pa.Table.from_batches([batch]), np.arange(start, start + batch.num_rows)
            start += batch.num_rows

    def _times(self, table: pa.Table, issues: list[Issue]) -> dict[str, np.ndarray]:
        """Each time column's numbers (``--time-column``, the history's), by name."""
        names = [self.time_column] if self.time_column is not None else []
        names += [self.spec.history.time] if self.spec.history is not None else []
        times = {}
        for name in dict.fromkeys(names):
            values = columns.floats(table.column(name).combine_chunks(), name, issues)
            if np.isnan(values).any():
                issues.append(Issue(np.isnan(values), name, "time is missing"))
            times[name] = values
        return times

    def _field(self, path: Path, spec: FieldSpec, col: pa.Array, issues: list[Issue]) -> Any:
        if spec.type == "numeric" or spec.bucket:
            values = columns.floats(col, spec.name, issues)
            if spec.fill_na is not None:
                values = np.where(np.isnan(values), spec.fill_na, values)
            return columns.as_ids(discretize(values)) if spec.bucket else values
        if spec.type == "sequence" and columns.is_list(col):
            try:
                return columns.token_lists(col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise located(f"a sequence column must be text or a list of values that cast "
                              f"to text, got {col.type}", path, field=spec.name) from None
        return columns.utf8(col, spec.name, issues)

    def history_builder(
        self, bad_rows: BadRows, history_log: Sequence[Path] = (),
    ) -> HistoryBuilder | None:
        """A history builder to carry over several files read in turn (``None`` without a
        ``history`` key in the schema); see :meth:`read`. ``history_log``: files of
        history-only events, read in turn and merged with the rows by time
        (``HistoryBuilder``'s ``log``)."""
        if self.spec.history is None:
            if history_log:
                raise ConfigError("a history log needs a 'history' key in the schema file")
            return None
        return HistoryBuilder(self.spec.history, Path(), bad_rows, order_hint=(
            "sort the log by time, or by user then time, and give its files in time order"),
            log=self._history_events(history_log, bad_rows) if history_log else None)

    def _history_events(
        self, files: Sequence[Path], bad_rows: BadRows,
    ) -> Iterator[tuple[Path, ParsedChunk]]:
        """The chunks of a history log: the history's user, time and columns (the label when
        the file has it), parsed and checked as the rows' are."""
        assert self.spec.history is not None
        reader = TabularReader(self.spec.history_log_spec(), self.parquet,
                               block_size=self.block_size, time_column=self.spec.history.time)
        for path in files:
            for chunk in reader.read(path, bad_rows, allow_unlabelled=True):
                yield path, chunk

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
        histories: HistoryBuilder | None = None,
    ) -> Iterator[ParsedChunk]:
        """The chunks of ``path``. With a ``history`` key, each row gets its user's history:
        from ``histories`` (from :meth:`history_builder`, so that the users' earlier files count)
        or, without it, from this file's earlier rows alone."""
        if self.parquet:
            chunks = self._parquet_chunks(path, allow_unlabelled)
        else:
            self._columns(path, header_of(path, self.spec.delimiter), allow_unlabelled)
            chunks = read_delimited(path, bad_rows, delimiter=self.spec.delimiter,
                                    block_size=self.block_size)
        yield from self._parsed(path, chunks, bad_rows, histories)

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]:
        """The rows of ``table`` (histories, with a ``history`` key, from its earlier rows)."""
        self._columns(TABLE, table.column_names, allow_unlabelled=True)
        yield from self._parsed(TABLE, table_chunks(table), bad_rows, None)

    def _parsed(
        self, path: Path, chunks: Iterator[tuple[pa.Table, np.ndarray]], bad_rows: BadRows,
        histories: HistoryBuilder | None,
    ) -> Iterator[ParsedChunk]:
        history = self.spec.history
        builder = histories or self.history_builder(bad_rows)
        if builder is not None:
            builder.path = path
        for table, lines in chunks:
            issues: list[Issue] = []
            label = (
                columns.labels(table.column(self.spec.label).combine_chunks(), self.spec.label,
                               self.spec.label_values, issues)
                if self.spec.label in table.column_names
                else columns.unknown_labels(table.num_rows)
            )
            parsed = {spec.name: self._field(path, spec, table.column(spec.name).combine_chunks(),
                                             issues)
                      for spec in self.spec.fields}
            times = self._times(table, issues)
            users = (columns.utf8(table.column(history.user).combine_chunks(), history.user,
                                  issues) if history is not None else None)
            keep = bad_rows.check(path, lines, issues)
            time = times[self.time_column] if self.time_column is not None else None
            chunk = ParsedChunk(parsed, label, lines, table, time)
            if not keep.all():
                chunk = chunk.take(keep)
            if builder is not None:
                assert history is not None and users is not None
                chunk = builder.add(chunk, users.filter(pa.array(keep)), times[history.time][keep])
            yield chunk
