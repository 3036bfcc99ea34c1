"""Tiny raw files for the data tests, written by hand-readable helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mutualctr.cli import main
from mutualctr.data.prepare import SplitOptions, prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.criteo import CATEGORICAL_FIELDS, INTEGER_FIELDS
from mutualctr.data.store import EncodedStore

ALL_TRAIN = SplitOptions("random", (1.0, 0.0, 0.0), seed=0)
CHRONOLOGICAL = SplitOptions("chronological", (0.8, 0.1, 0.1))
# one epoch of a small DeepFM: a run to score with, in seconds
TINY_TRAINING = ["--epochs", "1", "--set", "train.batch_size=100",
                 "--set", "model_config.hidden_units=[8]", "--set", "model_config.embedding_dim=4"]


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


def trained_deepfm(root: Path, make_store: Callable[[Path, Path], EncodedStore],
                   lines: list[str]) -> tuple[EncodedStore, Path]:
    """``lines`` written to ``root/train.txt``, prepared by ``make_store(root, file)`` and a
    DeepFM trained on the store for one epoch (:data:`TINY_TRAINING`) into ``root/run``."""
    store = make_store(root, write_lines(root / "train.txt", lines))
    run = root / "run"
    assert main(["train", "--data", str(store.root), "--model", "deepfm", "--out", str(run),
                 *TINY_TRAINING]) == 0
    return store, run
