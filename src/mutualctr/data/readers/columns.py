"""Vectorised checks and conversions of raw ``binary`` columns, reporting bad rows as issues.

Every function takes one column of a chunk and the chunk's list of :class:`Issue` s, appends an
issue for the rows it cannot convert, and returns the converted column with a harmless
placeholder in those rows (the rows are dropped or reported afterwards by ``BadRows.check``).
The fast path is one Arrow kernel per column; only a column that fails is looked at row by row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mutualctr.data.readers.base import Issue


def utf8(col: pa.Array, field: str, issues: list[Issue]) -> pa.StringArray:
    """Decode a binary column as UTF-8 (``""`` where undecodable, with an issue).

    Columns of other types (from Parquet) are cast to their text form; nulls become ``""``.
    """
    if not pa.types.is_binary(col.type):
        return pc.fill_null(col.cast(pa.string()), "")
    try:
        return col.cast(pa.string())
    except pa.ArrowInvalid:
        pass
    values = col.to_pylist()
    bad = np.zeros(len(values), dtype=bool)
    for row, value in enumerate(values):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            bad[row] = True
    issues.append(Issue(bad, field, "undecodable bytes (not UTF-8)", col))
    return pc.if_else(pa.array(bad), b"", col).cast(pa.string())


def is_list(col: pa.Array) -> bool:
    """Whether ``col`` holds lists (Parquet ``list<...>``, large or fixed-size lists too)."""
    return (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
            or pa.types.is_fixed_size_list(col.type))


def token_lists(col: pa.Array) -> pa.ListArray:
    """A list column as lists of text tokens: values cast to text, a missing value becoming
    ``""`` (the missing token); a missing list becomes ``[""]``, as an empty CSV cell does, while
    an empty list stays empty (no token). Raises ``pa.ArrowInvalid`` or
    ``pa.ArrowNotImplementedError`` when the values do not cast to text."""
    lists = col.cast(pa.list_(pa.string()))
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    missing = ~lists.is_valid().to_numpy(zero_copy_only=False)
    values = pc.fill_null(pc.list_flatten(lists), "")
    if not missing.any():
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), values)
    counts = np.where(missing, 1, np.nan_to_num(lengths).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    row = np.repeat(np.arange(len(counts)), counts)
    source = np.cumsum(np.where(missing, 0, counts)) - np.where(missing, 0, counts)
    taken = np.where(missing[row], len(values), source[row] + np.arange(len(row)) - offsets[row])
    padded = pa.concat_arrays([values, pa.array([""], pa.string())])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), padded.take(taken))


NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def floats(col: pa.Array, field: str, issues: list[Issue]) -> np.ndarray:
    """Parse decimal numbers; ``""`` (after trimming blanks) is missing (``NaN``).

    Accepted: optional sign, digits with an optional point, optional exponent (``NUMBER``).
    ``nan`` and infinite values are bad, not missing: nothing becomes missing unless empty.
    """
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return _finite(col.cast(pa.float64()).to_numpy(zero_copy_only=False), field, col, issues)
    text = utf8(col, field, issues)
    try:  # fast path: no blanks to trim (trimming costs more than the parse)
        as_text = _empty_as_null(text)
        out = pc.cast(as_text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        as_text = _empty_as_null(pc.utf8_trim_whitespace(text))
        try:
            out = pc.cast(as_text, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            out = None
    if out is not None:
        bad = np.isnan(out) & as_text.is_valid().to_numpy(zero_copy_only=False)  # "nan"
    else:  # find the culprits; parse the well-formed values one by one
        ok = pc.match_substring_regex(as_text, NUMBER).fill_null(True)
        kept = pc.if_else(ok, as_text, None).to_pylist()
        out = np.array([np.nan if v is None else float(v) for v in kept], dtype=np.float64)
        bad = ~ok.to_numpy(zero_copy_only=False)
    if bad.any():
        issues.append(Issue(bad, field, "not a number", col))
        out = np.where(bad, np.nan, out)
    return _finite(out, field, col, issues)


def _empty_as_null(text: pa.StringArray) -> pa.StringArray:
    """The same strings with ``""`` as null, by a validity bitmap over the offsets (no copy)."""
    start = text.offset
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=start + len(text) + 1)
    present = np.concatenate([np.zeros(start, dtype=bool), np.diff(offsets[start:]) > 0])
    if text.null_count:
        present[start:] &= text.is_valid().to_numpy(zero_copy_only=False)
    bitmap = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.StringArray.from_buffers(len(text), text.buffers()[1], text.buffers()[2], bitmap,
                                       offset=start)


def _finite(out: np.ndarray, field: str, col: pa.Array, issues: list[Issue]) -> np.ndarray:
    infinite = np.isinf(out)
    if infinite.any():
        issues.append(Issue(infinite, field, "not a finite number", col))
        out = np.where(infinite, np.nan, out)
    return out


def labels(
    col: pa.Array, field: str, mapping: Mapping[str, float], issues: list[Issue],
) -> np.ndarray:
    """Map label strings (blanks trimmed) to 0/1 (e.g. ``{"0": 0, "1": 1}``); others are bad."""
    text = utf8(col, field, issues)
    keys = pa.array(list(mapping), pa.string())
    index = pc.index_in(text, value_set=keys)
    if index.null_count:  # trimming is slow: only when needed
        index = pc.index_in(pc.utf8_trim_whitespace(text), value_set=keys)
    bad = index.is_null().to_numpy(zero_copy_only=False)
    if bad.any():
        expected = ", ".join(repr(k) for k in mapping)
        issues.append(Issue(bad, field, f"label must be one of {expected}", col))
    lookup = np.asarray(list(mapping.values()), dtype=np.float32)
    return lookup[index.fill_null(0).to_numpy(zero_copy_only=False)]


def unknown_labels(rows: int) -> np.ndarray:
    """The labels of rows from a file without a label column: ``NaN`` (unknown)."""
    return np.full(rows, np.nan, dtype=np.float32)


def as_ids(values: np.ndarray) -> pa.Int64Array:
    """Integral float values as an integer column; ``NaN`` becomes null (missing)."""
    missing = np.isnan(values)
    return pa.array(np.where(missing, 0, values).astype(np.int64), mask=missing)
