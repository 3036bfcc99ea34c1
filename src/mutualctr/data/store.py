"""The encoded store: one folder per dataset, ``meta.json`` plus per-split ``.npy`` arrays.

Layout::

    DIR/meta.json            schema, feature map, rows and positive rate per split, inputs with
                             sizes and checksums, settings, skipped rows, format version
    DIR/encoder.json         the fitted encoder (vocabularies, scalers), JSON, no pickle
    DIR/<split>/categorical.npy  int32 [N, n_categorical]
    DIR/<split>/numeric.npy      float32 [N, n_numeric]
    DIR/<split>/seq_<k>.npy      int32 [N, max_len_k], one per sequence feature
    DIR/<split>/label.npy        float32 [N]
    DIR/<split>/prob.npy         float32 [N], only when true probabilities were given

Every file is written under a temporary name and renamed when complete (``mutualctr.files``);
``meta.json`` is written last: a folder without it is an unfinished store.
Arrays are opened with ``np.load(mmap_mode="r")``, so opening a store costs no reading.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.encoder import Encoder
from mutualctr.data.raw import encode_raw_chunks, encode_raw_file, encode_raw_table
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import DataError
from mutualctr.files import atomic_path, write_errors

if TYPE_CHECKING:
    import pyarrow as pa

STORE_FORMAT_VERSION = 1
META_FILE = "meta.json"
ENCODER_FILE = "encoder.json"
SPLIT_NAMES = ("train", "valid", "test")


def _load(path: Path) -> np.ndarray:
    # np.load cannot memory-map a zero-size array; such arrays are tiny anyway.
    arr = np.load(path, mmap_mode="r")
    return arr if arr.size else np.load(path)


class EncodedStore:
    """A finished store folder. Use :meth:`open`; nothing is read until a split is used."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta
        self.feature_map = FeatureMap.from_dict(meta["feature_map"])
        self._encoder: Encoder | None = None

    @classmethod
    def open(cls, root: str | Path) -> EncodedStore:
        root = Path(root)
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise DataError(
                "not an encoded store (no meta.json); build one with `mutualctr data prepare`",
                file=str(root),
            )
        meta = json.loads(meta_path.read_text())
        version = meta.get("format_version")
        if version != STORE_FORMAT_VERSION:
            raise DataError(
                f"store format version {version} is not supported (expected "
                f"{STORE_FORMAT_VERSION}); rebuild it with `mutualctr data prepare --overwrite`",
                file=str(meta_path),
            )
        return cls(root, meta)

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(self.meta["splits"])

    def split(self, name: str) -> SplitArrays:
        if name not in self.meta["splits"]:
            raise DataError(
                f"no split {name!r} in this store (has {', '.join(self.split_names)})",
                file=str(self.root),
            )
        folder = self.root / name
        n_seq = len(self.feature_map.sequence)
        prob_path = folder / "prob.npy"
        return SplitArrays(
            categorical=_load(folder / "categorical.npy"),
            numeric=_load(folder / "numeric.npy"),
            sequences=tuple(_load(folder / f"seq_{k}.npy") for k in range(n_seq)),
            label=_load(folder / "label.npy"),
            prob=_load(prob_path) if prob_path.is_file() else None,
        )

    @property
    def encoder(self) -> Encoder:
        """The encoder fitted when the store was built (loaded on first use)."""
        if self._encoder is None:
            self._encoder = Encoder.from_dict(json.loads((self.root / ENCODER_FILE).read_text()))
        return self._encoder

    def encode_file(self, path: str | Path) -> tuple[SplitArrays, pa.Table]:
        """Encode a raw file of the store's format exactly as training data was encoded.

        Returns the encoded rows and the raw rows (as read, one per encoded row) so callers can
        write predictions next to their inputs. Bad rows raise :class:`DataError`.
        """
        return encode_raw_file(self.meta["settings"], self.encoder, Path(path))

    def encode_chunks(self, path: str | Path) -> Iterator[tuple[SplitArrays, pa.Table]]:
        """:meth:`encode_file` chunk by chunk, in bounded memory (``raw.encode_raw_chunks``)."""
        return encode_raw_chunks(self.meta["settings"], self.encoder, Path(path))

    def encode_table(self, table: pa.Table) -> SplitArrays:
        """Encode rows given in memory, with a file's columns, as :meth:`encode_file` would
        encode them (``raw.encode_raw_table``); one encoded row per row of ``table``."""
        return encode_raw_table(self.meta["settings"], self.encoder, table)


class _NpyStream:
    """A ``.npy`` file of known shape written front to back with plain writes.

    Plain writes rather than a writable memmap: pages of a memmap being filled stay resident,
    so peak memory would grow with the split's size. Unbuffered, so a failed write (a full
    disk) surfaces at the write that failed and closing never retries it; the error names
    ``path`` (the file's final name) and the file's size.
    """

    def __init__(self, path: Path, tmp: Path, dtype: type, shape: tuple[int, ...]) -> None:
        self.path, self.tmp = path, tmp
        self.dtype = np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": shape}
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, header)
        self.size = len(head.getbuffer()) + int(np.prod(shape)) * self.dtype.itemsize
        with self._errors():
            self.handle = open(tmp, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._write(memoryview(head.getvalue()))

    def _errors(self) -> AbstractContextManager[None]:
        return write_errors(self.path, self.tmp, self.size)

    def _write(self, data: memoryview) -> None:
        with self._errors():
            while data:  # an unbuffered write may take fewer bytes than given
                data = data[self.handle.write(data):]

    def write(self, arr: np.ndarray) -> None:
        flat = np.ascontiguousarray(arr, dtype=self.dtype).reshape(-1).view(np.uint8)
        self._write(memoryview(flat))

    def close(self) -> None:
        with self._errors():
            self.handle.close()


class SplitWriter:
    """The ``.npy`` files of one split, filled chunk by chunk in row order.

    Each file is written under a temporary name (:func:`mutualctr.files.atomic_path`) and gets
    its own name in :meth:`close`, once every row is in, so no array is ever found truncated
    under its final name. Used as a context manager, an error inside the block removes the
    temporary files instead.
    """

    def __init__(
        self, folder: Path, rows: int, n_categorical: int, n_numeric: int,
        seq_lens: tuple[int, ...], with_prob: bool,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shapes: list[tuple[str, type, tuple[int, ...]]] = [
            ("categorical", np.int32, (rows, n_categorical)),
            ("numeric", np.float32, (rows, n_numeric)),
        ]
        shapes += [(f"seq_{k}", np.int32, (rows, length)) for k, length in enumerate(seq_lens)]
        shapes.append(("label", np.float32, (rows,)))
        if with_prob:
            shapes.append(("prob", np.float32, (rows,)))
        with ExitStack() as files:
            self.streams = {
                stem: _NpyStream(folder / f"{stem}.npy",
                                 files.enter_context(atomic_path(folder / f"{stem}.npy")),
                                 dtype, shape)
                for stem, dtype, shape in shapes
            }
            self._files = files.pop_all()  # renamed in close(), removed on an error
        self.rows = rows
        self.filled = 0

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        for stream in self.streams.values():
            stream.close()
        self._files.__exit__(exc_type, exc, tb)

    def append(self, chunk: SplitArrays) -> None:
        if self.filled + len(chunk) > self.rows:
            raise RuntimeError(f"split overflow: {self.filled + len(chunk)} rows into {self.rows}")
        arrays = dict(chunk.arrays())
        if arrays.keys() != self.streams.keys():
            raise RuntimeError(f"chunk has arrays {sorted(arrays)}, split {sorted(self.streams)}")
        for stem, stream in self.streams.items():
            stream.write(arrays[stem])
        self.filled += len(chunk)

    def close(self) -> None:
        """Give every file its name; an incomplete split raises and leaves none behind."""
        try:
            for stream in self.streams.values():
                stream.close()
            if self.filled != self.rows:
                raise RuntimeError(f"split incomplete: {self.filled} of {self.rows} rows written")
        except BaseException:
            self._files.__exit__(*sys.exc_info())
            raise
        self._files.close()


def training_positive_rate(store: EncodedStore) -> float:
    """The background click rate for normalized entropy: the training split's positive rate,
    as the store's meta records it (computed from the labels for a store without it)."""
    recorded = store.meta["splits"].get("train", {}).get("positive_rate")
    if recorded is not None:
        return float(recorded)
    return float(np.mean(store.split("train").label, dtype=np.float64))
