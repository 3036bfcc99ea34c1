"""Avazu click logs (Kaggle CSV with header, BARS Avazu_x4 preprocessing).

``id`` is dropped, ``click`` is the label, and ``hour`` (``YYMMDDHH``) is replaced by three
derived fields: the hour of day, the weekday (Monday = 0) and whether it is a weekend. Every
field is categorical; the default min-count is 2 as in BARS. A prediction input may have no
``click`` column (Kaggle's ``test.csv``), in a file or in memory (``read_table``: the CSV's
columns, by name).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
from mutualctr.data.readers.text import DEFAULT_BLOCK_SIZE, header_of, read_delimited
from mutualctr.data.schema import FieldSpec, Schema

RAW_FIELDS = (
    "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
    "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
    "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)
DERIVED_FIELDS = ("hour", "weekday", "weekend")
DEFAULT_MIN_COUNT = 2
LABELS = {"0": 0.0, "1": 1.0}


def split_hour(col: pa.Array, issues: list[Issue]) -> dict[str, pa.Array]:
    """``YYMMDDHH`` -> hour of day, weekday (Monday = 0), weekend ("1"/"0"), as tokens."""
    text = pc.utf8_trim_whitespace(columns.utf8(col, "hour", issues))
    stamp = pc.strptime(text, format="%y%m%d%H", unit="s", error_is_null=True)
    well_formed = pc.match_substring_regex(text, r"^[0-9]{8}$")
    bad = pc.or_(pc.invert(well_formed), stamp.is_null()).to_numpy(zero_copy_only=False)
    if bad.any():
        issues.append(Issue(bad, "hour", "expected YYMMDDHH", col))
    stamp = stamp.fill_null(0)
    weekday = pc.day_of_week(stamp)
    weekend = pc.greater_equal(weekday, 5).cast(pa.int8())
    return {
        "hour": pc.hour(stamp).cast(pa.string()),
        "weekday": weekday.cast(pa.string()),
        "weekend": weekend.cast(pa.string()),
    }


class AvazuReader:
    def __init__(
        self, min_count: int = DEFAULT_MIN_COUNT, block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.block_size = block_size
        self.schema = Schema(
            fields=tuple(
                FieldSpec(n, "categorical", min_count=min_count)
                for n in RAW_FIELDS + DERIVED_FIELDS
            ),
            label="click",
        )

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]:
        labelled = _require_columns(path, header_of(path, ","), allow_unlabelled)
        for table, lines in read_delimited(path, bad_rows, delimiter=",",
                                           block_size=self.block_size):
            yield _parse(path, bad_rows, table, lines, labelled)

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]:
        labelled = _require_columns(TABLE, table.column_names, allow_unlabelled=True)
        for part, lines in table_chunks(table):
            yield _parse(TABLE, bad_rows, part, lines, labelled)


def _require_columns(path: Path, names: list[str], allow_unlabelled: bool) -> bool:
    """Refuse a header without the Avazu columns; whether it has the label."""
    labelled = "click" in names or not allow_unlabelled
    needed = sorted({"hour", *RAW_FIELDS, *(["click"] if labelled else [])})
    require_columns(path, names, needed, "Avazu")
    return labelled


def _parse(
    path: Path, bad_rows: BadRows, table: pa.Table, lines: np.ndarray, labelled: bool,
) -> ParsedChunk:
    issues: list[Issue] = []
    label = (
        columns.labels(table.column("click").combine_chunks(), "click", LABELS, issues)
        if labelled else columns.unknown_labels(table.num_rows)
    )
    parsed = {
        name: columns.utf8(table.column(name).combine_chunks(), name, issues)
        for name in RAW_FIELDS
    }
    parsed.update(split_hour(table.column("hour").combine_chunks(), issues))
    return checked_chunk(path, bad_rows, issues, parsed, label, lines, table)
