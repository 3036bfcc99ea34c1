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

``meta.json`` is written last, atomically: a folder without it is an unfinished store.
Arrays are opened with ``np.load(mmap_mode="r")``, so opening a store costs no reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mutualctr.data.schema import FeatureMap
from mutualctr.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from mutualctr.data.encoder import Encoder

STORE_FORMAT_VERSION = 1
META_FILE = "meta.json"
ENCODER_FILE = "encoder.json"
SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class SplitArrays:
    """The encoded rows of one split (memory-mapped from a store, or plain in-memory arrays).

    Attributes:
        categorical: int32 ``[N, n_categorical]`` field-local ids.
        numeric: float32 ``[N, n_numeric]``.
        sequences: one int32 ``[N, max_len]`` array per sequence feature, ``0`` = padding.
        label: float32 ``[N]``.
        prob: float32 ``[N]`` true click probabilities, or ``None``.
    """

    categorical: np.ndarray
    numeric: np.ndarray
    sequences: tuple[np.ndarray, ...]
    label: np.ndarray
    prob: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        if self.label.ndim != 1:
            raise ValueError(f"label must be 1-d, got shape {self.label.shape}")
        named = [("categorical", self.categorical), ("numeric", self.numeric)]
        named += [(f"sequences[{k}]", s) for k, s in enumerate(self.sequences)]
        for name, arr in named:
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"{name} must have shape [{n}, *], got {arr.shape}")
        if self.prob is not None and self.prob.shape != (n,):
            raise ValueError(f"prob must have shape [{n}], got {self.prob.shape}")

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> SplitArrays:
        """Apply ``fn`` to every array (e.g. a row slice or mask)."""
        return SplitArrays(
            categorical=fn(self.categorical),
            numeric=fn(self.numeric),
            sequences=tuple(fn(s) for s in self.sequences),
            label=fn(self.label),
            prob=None if self.prob is None else fn(self.prob),
        )

    @staticmethod
    def concat(parts: Sequence[SplitArrays]) -> SplitArrays:
        """The rows of ``parts`` one after the other (at least one part)."""
        first = parts[0]
        return SplitArrays(
            categorical=np.concatenate([p.categorical for p in parts]),
            numeric=np.concatenate([p.numeric for p in parts]),
            sequences=tuple(np.concatenate([p.sequences[k] for p in parts])
                            for k in range(len(first.sequences))),
            label=np.concatenate([p.label for p in parts]),
            prob=None if first.prob is None else np.concatenate([p.prob for p in parts]),
        )

    @classmethod
    def empty(cls, feature_map: FeatureMap) -> SplitArrays:
        """Zero rows shaped for ``feature_map``."""
        return cls(
            categorical=np.zeros((0, len(feature_map.categorical)), np.int32),
            numeric=np.zeros((0, len(feature_map.numeric)), np.float32),
            sequences=tuple(np.zeros((0, f.max_len), np.int32) for f in feature_map.sequence),
            label=np.zeros(0, np.float32),
        )

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(file stem, array) pairs, in the store's naming."""
        yield "categorical", self.categorical
        yield "numeric", self.numeric
        for k, seq in enumerate(self.sequences):
            yield f"seq_{k}", seq
        yield "label", self.label
        if self.prob is not None:
            yield "prob", self.prob


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
            from mutualctr.data.encoder import Encoder

            self._encoder = Encoder.from_dict(json.loads((self.root / ENCODER_FILE).read_text()))
        return self._encoder

    def encode_file(self, path: str | Path) -> tuple[SplitArrays, pa.Table]:
        """Encode a raw file of the store's format exactly as training data was encoded.

        Returns the encoded rows and the raw rows (as read, one per encoded row) so callers can
        write predictions next to their inputs. Bad rows raise :class:`DataError`.
        """
        from mutualctr.data.prepare import encode_raw_file

        return encode_raw_file(self, Path(path))


class _NpyStream:
    """A ``.npy`` file of known shape written front to back with plain writes.

    Plain writes rather than a writable memmap: pages of a memmap being filled stay resident,
    so peak memory would grow with the split's size.
    """

    def __init__(self, path: Path, dtype: type, shape: tuple[int, ...]) -> None:
        self.handle = path.open("wb")
        self.dtype = np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(self.handle, header)

    def write(self, arr: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.handle.close()


class SplitWriter:
    """The ``.npy`` files of one split, filled chunk by chunk in row order."""

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
        self.streams = {stem: _NpyStream(folder / f"{stem}.npy", dtype, shape)
                        for stem, dtype, shape in shapes}
        self.rows = rows
        self.filled = 0

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
        for stream in self.streams.values():
            stream.close()
        if self.filled != self.rows:
            raise RuntimeError(f"split incomplete: {self.filled} of {self.rows} rows written")


def write_json_atomic(path: Path, data: dict[str, Any], indent: int | None = 2) -> None:
    """Write JSON to ``path`` via a temporary file and a rename, so readers never see half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)
