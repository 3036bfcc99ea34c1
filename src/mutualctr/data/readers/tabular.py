"""Any CSV or Parquet file, described by a schema YAML.

Schema file::

    label: clicked                 # the label column, values 0/1 (see label_values)
    delimiter: ","                 # CSV only
    fields:                        # the columns to use, in order; other columns are ignored
      - {name: user, type: categorical, min_count: 2}
      - {name: price, type: numeric}
      - {name: tags, type: sequence, separator: "|", max_len: 5}

Unknown keys are errors naming the key. CSV files need a header line; Parquet columns may be of
any type that casts to text (categorical), to a number (numeric) or is text (sequence). In
Parquet files the "line" of an error is the 1-based row number.

A prediction input may have no label column. ``time_column`` (``--time-column`` of
``--split time``) names a column of numbers (e.g. Unix seconds) giving each row's time; a row
whose time is missing or not a number is a bad row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mutualctr.config import from_dict, load_yaml
from mutualctr.data.readers import columns
from mutualctr.data.readers.base import BadRows, Issue, ParsedChunk, checked_chunk, require_columns
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
        fields = spec.fields
        if min_count is not None:
            fields = tuple(
                FieldSpec(f.name, f.type, min_count, f.separator, f.max_len) for f in fields
            )
        self.schema = Schema(fields=fields, label=spec.label)

    def _needed(self, labelled: bool) -> list[str]:
        names = [self.spec.label] if labelled else []
        names += [f.name for f in self.spec.fields]
        if self.time_column is not None:
            names.append(self.time_column)
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

    def _time(self, table: pa.Table, issues: list[Issue]) -> np.ndarray | None:
        if self.time_column is None:
            return None
        name = self.time_column
        values = columns.floats(table.column(name).combine_chunks(), name, issues)
        if np.isnan(values).any():
            issues.append(Issue(np.isnan(values), name, "time is missing"))
        return values

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]:
        if self.parquet:
            chunks = self._parquet_chunks(path, allow_unlabelled)
        else:
            self._columns(path, header_of(path, self.spec.delimiter), allow_unlabelled)
            chunks = read_delimited(path, bad_rows, delimiter=self.spec.delimiter,
                                    block_size=self.block_size)
        for table, lines in chunks:
            issues: list[Issue] = []
            label = (
                columns.labels(table.column(self.spec.label).combine_chunks(), self.spec.label,
                               self.spec.label_values, issues)
                if self.spec.label in table.column_names
                else columns.unknown_labels(table.num_rows)
            )
            parsed = {}
            for spec in self.spec.fields:
                col = table.column(spec.name).combine_chunks()
                convert = columns.floats if spec.type == "numeric" else columns.utf8
                parsed[spec.name] = convert(col, spec.name, issues)
            time = self._time(table, issues)
            yield checked_chunk(path, bad_rows, issues, parsed, label, lines, table, time)
