"""Criteo click logs (Kaggle Display Advertising / Criteo_x4 / ``data synth``).

TSV without header, no quoting: ``label``, 13 integer fields ``I1..I13``, 26 hashed categorical
fields ``C1..C26``; an empty value is missing. As in BARS Criteo_x4 the integers become
categorical: ``floor(ln(x)^2)`` for ``x > 2``, else ``int(x)``. With ``numeric=True`` they stay
numeric instead, as ``sign(x) * ln(1 + |x|)`` (standardised by the encoder).

A prediction input may leave out the label (Kaggle's ``test.txt``: the 39 feature columns only);
it is recognised by the number of columns in its first line. In memory (``read_table``) the
columns are named ``label`` (optional), ``I1..I13``, ``C1..C26``; integers may be given as
numbers or as text, a missing value as null or ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from mutualctr.data.readers import columns
from mutualctr.data.readers.base import (
    TABLE,
    BadRows,
    Issue,
    ParsedChunk,
    checked_chunk,
    require_columns,
    table_chunks,
)
from mutualctr.data.readers.text import DEFAULT_BLOCK_SIZE, first_line_width, read_delimited
from mutualctr.data.schema import FieldSpec, Schema

INTEGER_FIELDS = tuple(f"I{i}" for i in range(1, 14))
CATEGORICAL_FIELDS = tuple(f"C{i}" for i in range(1, 27))
COLUMNS = ("label", *INTEGER_FIELDS, *CATEGORICAL_FIELDS)
DEFAULT_MIN_COUNT = 10
LABELS = {"0": 0.0, "1": 1.0}


def discretize(values: np.ndarray) -> np.ndarray:
    """BARS Criteo_x4: ``floor(ln(x)^2)`` for ``x > 2``, else ``int(x)``; ``NaN`` stays."""
    with np.errstate(invalid="ignore", divide="ignore"):
        large = np.floor(np.square(np.log(np.where(values > 2, values, 1.0))))
    return np.where(values > 2, large, np.trunc(values))


def signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


class CriteoReader:
    def __init__(
        self, min_count: int = DEFAULT_MIN_COUNT, numeric: bool = False,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.numeric = numeric
        self.block_size = block_size
        int_type = "numeric" if numeric else "categorical"
        self.schema = Schema(
            fields=tuple(FieldSpec(n, int_type, min_count=min_count) for n in INTEGER_FIELDS)
            + tuple(FieldSpec(n, "categorical", min_count=min_count) for n in CATEGORICAL_FIELDS),
            label="label",
        )

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]:
        labelled = not (allow_unlabelled
                        and first_line_width(path, "\t", quoted=False) == len(COLUMNS) - 1)
        for table, lines in read_delimited(
            path, bad_rows, delimiter="\t", column_names=COLUMNS if labelled else COLUMNS[1:],
            quoted=False, block_size=self.block_size,
        ):
            yield self._parse(path, bad_rows, table, lines, labelled)

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]:
        require_columns(TABLE, table.column_names, COLUMNS[1:])
        labelled = "label" in table.column_names
        for part, lines in table_chunks(table):
            yield self._parse(TABLE, bad_rows, part, lines, labelled)

    def _parse(
        self, path: Path, bad_rows: BadRows, table: pa.Table, lines: np.ndarray, labelled: bool,
    ) -> ParsedChunk:
        issues: list[Issue] = []
        label = (
            columns.labels(table.column("label").combine_chunks(), "label", LABELS, issues)
            if labelled else columns.unknown_labels(table.num_rows)
        )
        parsed = {}
        for name in INTEGER_FIELDS:
            values = columns.floats(table.column(name).combine_chunks(), name, issues)
            parsed[name] = (
                signed_log(values) if self.numeric else columns.as_ids(discretize(values))
            )
        for name in CATEGORICAL_FIELDS:
            parsed[name] = columns.utf8(table.column(name).combine_chunks(), name, issues)
        return checked_chunk(path, bad_rows, issues, parsed, label, lines, table)
