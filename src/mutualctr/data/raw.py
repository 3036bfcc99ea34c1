"""Raw files encoded with an encoder fitted before: the rows ``mutualctr predict`` scores.

The reader is rebuilt from the settings a store recorded in ``meta.json``, so the file is parsed
exactly as the store's training data was. This module takes those settings and the encoder as
arguments rather than the store, so that the store can offer it as ``EncodedStore.encode_file``
without the two modules importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.encoder import Encoder
from mutualctr.data.readers import ReaderOptions, make_reader
from mutualctr.data.readers.base import BadRows


def encode_raw_file(
    settings: Mapping[str, Any], encoder: Encoder, path: Path,
) -> tuple[SplitArrays, pa.Table]:
    """Encode a raw file of the format in ``settings`` with ``encoder`` (in memory).

    Returns the encoded rows and the raw rows as read, one per encoded row. The file may lack
    the label column (labels are then ``NaN``; see ``readers.base``); a bad row raises
    :class:`~mutualctr.errors.DataError`.
    """
    options = ReaderOptions.from_settings(
        {k: v for k, v in settings.items() if k in ReaderOptions.__dataclass_fields__}
    )
    reader = make_reader(settings["format"], options)
    encoded, raw = [], []
    for chunk in reader.read(path, BadRows("error"), allow_unlabelled=True):
        encoded.append(encoder.encode(chunk))
        raw.append(chunk.raw)
    if not encoded:
        return SplitArrays.empty(encoder.feature_map), pa.table({})
    return SplitArrays.concat(encoded), pa.concat_tables(raw)
