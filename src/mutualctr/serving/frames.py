"""Rows in memory as the Arrow table the readers parse: a pandas DataFrame, an Arrow table or
record batch.

pandas is optional (the ``pandas`` extra): it is never imported here. A DataFrame can only
exist once its caller imported pandas, so the module is looked up in ``sys.modules``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pyarrow as pa

from mutualctr.errors import DataError


def is_table_like(data: object) -> bool:
    """Whether ``data`` is rows in memory that :func:`as_arrow_table` takes."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def as_arrow_table(data: Any) -> pa.Table:
    """``data`` (a pandas DataFrame, an Arrow table or record batch) as an Arrow table.

    A DataFrame's index is dropped (rows are named by their position). A column pyarrow cannot
    convert as a whole (an ``object`` column mixing numbers and text) becomes text, each value
    as ``str`` gives it and a missing one null, as a file would hold it: the reader then checks
    and converts it, and names the row of a bad value.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return _from_pandas(data)
    raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got {type(data).__name__}")


def _from_pandas(frame: Any) -> pa.Table:
    names = list(frame.columns)
    for name in names:
        if not isinstance(name, str):
            raise DataError(f"column names must be text, got {name!r}")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"duplicate columns: {', '.join(duplicated)}", field=duplicated[0])
    return pa.table({name: _column(frame[name]) for name in names})


def _column(series: Any) -> pa.Array:
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array([None if _missing(v) else str(v) for v in series], pa.string())


def _missing(value: Any) -> bool:
    pandas = sys.modules["pandas"]
    return (value is None or value is pandas.NA or value is pandas.NaT
            or (isinstance(value, float) and math.isnan(value)))
