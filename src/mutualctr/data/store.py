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
from collections.abc import Iterator
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


class SplitWriter:
    """Pre-allocated ``.npy`` memmaps of one split, filled chunk by chunk in row order."""

    def __init__(
        self, folder: Path, rows: int, n_categorical: int, n_numeric: int,
        seq_lens: tuple[int, ...], with_prob: bool,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)

        def create(stem: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            path = folder / f"{stem}.npy"
            if rows == 0:
                np.save(path, np.zeros(shape, dtype=dtype))
                return np.zeros(shape, dtype=dtype)
            return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)

        self.arrays = SplitArrays(
            categorical=create("categorical", np.int32, (rows, n_categorical)),
            numeric=create("numeric", np.float32, (rows, n_numeric)),
            sequences=tuple(
                create(f"seq_{k}", np.int32, (rows, length)) for k, length in enumerate(seq_lens)
            ),
            label=create("label", np.float32, (rows,)),
            prob=create("prob", np.float32, (rows,)) if with_prob else None,
        )
        self.rows = rows
        self.filled = 0

    def append(self, chunk: SplitArrays) -> None:
        lo, hi = self.filled, self.filled + len(chunk)
        if hi > self.rows:
            raise RuntimeError(f"split overflow: {hi} rows written into {self.rows}")
        for (_, dst), (_, src) in zip(self.arrays.arrays(), chunk.arrays(), strict=True):
            dst[lo:hi] = src
        self.filled = hi

    def close(self) -> None:
        if self.filled != self.rows:
            raise RuntimeError(f"split incomplete: {self.filled} of {self.rows} rows written")
        for _, arr in self.arrays.arrays():
            if isinstance(arr, np.memmap):
                arr.flush()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` via a temporary file and a rename, so readers never see half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
