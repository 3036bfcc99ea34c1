"""Raw files encoded with an encoder fitted before: the rows ``mutualctr predict`` scores.

The reader is rebuilt from the settings a store recorded in ``meta.json``, so the file is parsed
exactly as the store's training data was. Rows already in memory (an Arrow table with the file's
columns) go through the same reader's ``read_table``: the same parse and checks, one chunk of
the table at a time. This module takes those settings and the encoder as arguments rather than
the store, so that the store can offer it as ``EncodedStore.encode_file`` (and
``encode_table``) without the two modules importing each other.

Serving inputs drift from the training data: values the encoder never kept become the OOV id
(see ``data.encoder``), and :class:`UnseenValues` counts them per field so a caller can say how
much of its input the model sees as OOV.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.encoder import Encoder
from mutualctr.data.readers import ReaderOptions, make_reader
from mutualctr.data.readers.base import BadRows, Reader
from mutualctr.data.schema import OOV_ID, FeatureMap


def encode_raw_chunks(
    settings: Mapping[str, Any], encoder: Encoder, path: Path,
) -> Iterator[tuple[SplitArrays, pa.Table]]:
    """Encode a raw file of the format in ``settings`` with ``encoder``, chunk by chunk.

    Yields the encoded rows of each chunk the reader streams and the same rows as read, so
    memory holds one chunk at a time whatever the file's size. The file may lack the label
    column (labels are then ``NaN``; see ``readers.base``); a bad row raises
    :class:`~mutualctr.errors.DataError` naming the file, the line and the field, after the
    chunks before it were yielded.
    """
    for chunk in store_reader(settings).read(path, BadRows("error"), allow_unlabelled=True):
        yield encoder.encode(chunk), chunk.raw


def encode_raw_file(
    settings: Mapping[str, Any], encoder: Encoder, path: Path,
) -> tuple[SplitArrays, pa.Table]:
    """:func:`encode_raw_chunks` joined: the whole file's encoded and raw rows, in memory."""
    return _joined(encode_raw_chunks(settings, encoder, path), encoder)


def encode_raw_table(
    settings: Mapping[str, Any], encoder: Encoder, table: pa.Table,
) -> SplitArrays:
    """Encode rows given in memory as :func:`encode_raw_chunks` encodes a file's.

    ``table`` has the columns of a file of the format in ``settings``, named as its reader
    names them (``readers.base``; the label column may be absent), and may hold other columns,
    which are ignored. Every row is kept, in order: a bad value raises
    :class:`~mutualctr.errors.DataError` naming its 0-based row and its field.
    """
    reader = store_reader(settings)
    chunks = ((encoder.encode(chunk), chunk.raw)
              for chunk in reader.read_table(table, BadRows("error")))
    encoded, _ = _joined(chunks, encoder)
    return encoded


def store_reader(settings: Mapping[str, Any]) -> Reader:
    """The reader of the store whose ``meta.json`` recorded ``settings``."""
    options = ReaderOptions.from_settings(
        {k: v for k, v in settings.items() if k in ReaderOptions.__dataclass_fields__}
    )
    return make_reader(settings["format"], options)


def _joined(
    parts: Iterator[tuple[SplitArrays, pa.Table]], encoder: Encoder,
) -> tuple[SplitArrays, pa.Table]:
    chunks = list(parts)
    if not chunks:
        return SplitArrays.empty(encoder.feature_map), pa.table({})
    encoded, raw = zip(*chunks, strict=True)
    return SplitArrays.concat(encoded), pa.concat_tables(raw)


@dataclass
class UnseenValues:
    """Per field, the rows whose value was mapped to the OOV id, over the chunks added.

    "Unseen" means outside the encoder's vocabulary: never in the training split, or seen there
    fewer than the field's ``min_count`` times (the encoder keeps no count of the values it
    dropped, so the two cannot be told apart). A sequence row counts once however many of its
    tokens are OOV. Counted on the encoded ids, so a count is exactly what the model sees.
    """

    feature_map: FeatureMap
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, encoded: SplitArrays) -> None:
        self.rows += len(encoded)
        columns = [(f.name, encoded.categorical[:, k] == OOV_ID)
                   for k, f in enumerate(self.feature_map.categorical)]
        columns += [(f.name, (ids == OOV_ID).any(axis=1))
                    for f, ids in zip(self.feature_map.sequence, encoded.sequences, strict=True)]
        for name, oov in columns:
            self.counts[name] = self.counts.get(name, 0) + int(np.count_nonzero(oov))

    def summary(self) -> str | None:
        """One line, e.g. ``unseen values mapped to OOV: C3 1,204 (12.0% of rows), C12 87
        (0.9%)``, fields in feature order; ``None`` when no field has any."""
        shown = [(name, count) for name, count in self.counts.items() if count]
        if not shown:
            return None
        return "unseen values mapped to OOV: " + ", ".join(
            f"{name} {count:,d} ({100 * count / self.rows:.1f}%{' of rows' if k == 0 else ''})"
            for k, (name, count) in enumerate(shown)
        )
