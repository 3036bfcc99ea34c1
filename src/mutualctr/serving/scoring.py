"""Raw rows with their predictions: appended as columns and written to a CSV.

A scored file is streamed: each chunk of raw rows is encoded, scored and written before the
next is read, so memory does not grow with the file. The CSV is written under a temporary name
and renamed when complete, so a bad row or a failure midway leaves no output (or the previous
one), never a partial file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.raw import UnseenValues
from mutualctr.errors import DataError
from mutualctr.files import atomic_path

Scorer = Callable[[SplitArrays], dict[str, np.ndarray]]  # encoded rows -> named predictions


def prediction_column(name: str, count: int) -> str:
    """The column of prediction ``name`` among ``count``: ``prediction`` when it is the only
    one, else ``prediction_<name>``."""
    return "prediction" if count == 1 else f"prediction_{name}"


def with_predictions(raw: pa.Table, predictions: dict[str, np.ndarray]) -> pa.Table:
    """``raw`` with one column per named prediction (:func:`prediction_column`)."""
    for name, values in predictions.items():
        raw = raw.append_column(prediction_column(name, len(predictions)), pa.array(values))
    return raw


def scored_chunks(
    chunks: Iterable[tuple[SplitArrays, pa.Table]], score: Scorer,
    unseen: UnseenValues | None = None,
) -> Iterator[pa.Table]:
    """Each chunk's raw rows with their predictions, one chunk at a time; the OOV values of
    every chunk are tallied in ``unseen`` when given."""
    for encoded, raw in chunks:
        if unseen is not None:
            unseen.add(encoded)
        yield with_predictions(raw, score(encoded))


def write_csv(tables: Iterable[pa.Table], path: Path) -> int:
    """Write ``tables`` (one schema) to ``path`` as one CSV, one at a time; the rows written."""
    writer: pa_csv.CSVWriter | None = None
    rows = 0
    try:
        for table in tables:
            if writer is None:
                writer = pa_csv.CSVWriter(path, table.schema)
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def write_scored_csv(tables: Iterable[pa.Table], out: Path, source: str | Path) -> int:
    """:func:`write_csv` to ``out`` atomically; the rows written. No row at all is an error
    naming ``source`` (the raw file), and leaves ``out`` as it was: the readers refuse an empty
    file, so this is a file whose every row the store's settings leave out (e.g. MovieLens
    ratings equal to ``drop_rating``)."""
    with atomic_path(out) as tmp:
        rows = write_csv(tables, tmp)
        if rows == 0:
            raise DataError("no rows to predict", file=str(source))
    return rows
