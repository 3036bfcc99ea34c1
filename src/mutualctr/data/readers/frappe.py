"""Frappe app-usage logs, in BARS Frappe_x1 CSV form or the original libFM form.

* CSV (``train.csv`` of Frappe_x1): header ``label,user,item,daytime,weekday,isweekend,
  homework,cost,weather,country,city``, label 0/1.
* libFM (``frappe.train.libfm``): space-separated ``label idx:1 idx:1 ...`` with one token per
  field in the order above, label ``1`` or ``-1`` (= 0). A field's value is the feature index.

Every field is categorical (min-count 1 by default). The form is taken from the file name
(``.libfm`` -> libFM) unless given. A prediction input may leave out the label: the CSV form
by its header, the libFM form by its number of tokens (10 instead of 11). In memory
(``read_table``) the columns are named as in the CSV form (``label`` optional); they hold the
libFM form's ``index:value`` tokens when the form says so or, for ``auto``, when the first row's
``user`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

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
from mutualctr.data.readers.text import (
    DEFAULT_BLOCK_SIZE,
    first_line_width,
    header_of,
    read_delimited,
)
from mutualctr.data.schema import FieldSpec, Schema

FIELDS = (
    "user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country",
    "city",
)
CSV_LABELS = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}
LIBFM_LABELS = {"-1": 0.0, "1": 1.0, "0": 0.0, "-1.0": 0.0, "1.0": 1.0, "0.0": 0.0}
FrappeForm = Literal["auto", "csv", "libfm"]
LIBFM_TOKEN = r"^[0-9]+:[-+0-9.eE]+$"


def libfm_values(col: pa.Array, field: str, issues: list[Issue]) -> pa.StringArray:
    """``"451:1"`` -> ``"451"``; anything not ``index:value`` is bad."""
    text = columns.utf8(col, field, issues)
    ok = pc.match_substring_regex(text, LIBFM_TOKEN).to_numpy(zero_copy_only=False)
    if not ok.all():
        issues.append(Issue(~ok, field, "expected index:value", col))
    return pc.list_element(pc.split_pattern(text, ":", max_splits=1), 0)


class FrappeReader:
    def __init__(
        self, min_count: int = 1, form: FrappeForm = "auto",
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        self.form = form
        self.block_size = block_size
        self.schema = Schema(
            fields=tuple(FieldSpec(n, "categorical", min_count=min_count) for n in FIELDS),
            label="label",
        )

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]:
        libfm = self.form == "libfm" or (self.form == "auto" and "libfm" in path.name.lower())
        if libfm:
            labelled = not (allow_unlabelled
                            and first_line_width(path, " ", quoted=False) == len(FIELDS))
            names = ("label", *FIELDS) if labelled else FIELDS
            chunks = read_delimited(path, bad_rows, delimiter=" ", quoted=False,
                                    column_names=names, block_size=self.block_size)
        else:
            header = set(header_of(path, ","))
            labelled = "label" in header or not allow_unlabelled
            needed = sorted({*FIELDS, *(["label"] if labelled else [])})
            require_columns(path, header, needed, "Frappe")
            chunks = read_delimited(path, bad_rows, delimiter=",", block_size=self.block_size)
        for table, lines in chunks:
            yield _parse(path, bad_rows, table, lines, labelled, libfm)

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]:
        require_columns(TABLE, table.column_names, FIELDS, "Frappe")
        labelled = "label" in table.column_names
        libfm = self.form == "libfm" or (self.form == "auto" and _libfm_values(table))
        for part, lines in table_chunks(table):
            yield _parse(TABLE, bad_rows, part, lines, labelled, libfm)


def _libfm_values(table: pa.Table) -> bool:
    """Whether the first row's ``user`` is a libFM ``index:value`` token."""
    if table.num_rows == 0:
        return False
    first = table.column("user")[0].as_py()
    if isinstance(first, bytes):
        first = first.decode("utf-8", errors="replace")
    return isinstance(first, str) and re.match(LIBFM_TOKEN, first) is not None


def _parse(
    path: Path, bad_rows: BadRows, table: pa.Table, lines: np.ndarray, labelled: bool,
    libfm: bool,
) -> ParsedChunk:
    issues: list[Issue] = []
    label = (
        columns.labels(table.column("label").combine_chunks(), "label",
                       LIBFM_LABELS if libfm else CSV_LABELS, issues)
        if labelled else columns.unknown_labels(table.num_rows)
    )
    convert = libfm_values if libfm else columns.utf8
    parsed = {n: convert(table.column(n).combine_chunks(), n, issues) for n in FIELDS}
    return checked_chunk(path, bad_rows, issues, parsed, label, lines, table)
