"""Tiny raw files for the data tests, written by hand-readable helpers."""

from __future__ import annotations

from pathlib import Path

from mutualctr.data.prepare import SplitOptions, prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.criteo import CATEGORICAL_FIELDS, INTEGER_FIELDS
from mutualctr.data.store import EncodedStore

ALL_TRAIN = SplitOptions("random", (1.0, 0.0, 0.0), seed=0)


def criteo_line(label: str, **values: str) -> str:
    """A Criteo TSV line; fields not given are missing (empty)."""
    cells = [label] + [values.get(name, "") for name in INTEGER_FIELDS + CATEGORICAL_FIELDS]
    return "\t".join(cells)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def build(
    tmp_path: Path, fmt: str, inputs: list[Path], *, split: SplitOptions = ALL_TRAIN,
    out: str = "store", **options: object,
) -> EncodedStore:
    """Prepare a store with every row in train (unless ``split`` says otherwise)."""
    reader_options = ReaderOptions(**options)  # type: ignore[arg-type]
    return prepare(inputs, tmp_path / out, fmt, reader_options=reader_options,
                   split=split).store
