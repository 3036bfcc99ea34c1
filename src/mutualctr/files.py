"""Atomic file writes: the one way the project writes a file that a reader takes as complete.

Every file goes to a temporary name in the target's folder, is flushed and fsync'ed, then
renamed over the target with ``os.replace`` (atomic on POSIX), and the folder is fsync'ed so the
new name survives a power cut. A crash, a kill or a full disk mid-write leaves the previous file
(or none), never a half-written one, and the temporary file is removed.

``atomic_path`` serves writers that want a path (``torch.save``, ``np.savez``, pyarrow, a
figure); :func:`write_text`, :func:`write_json` and :func:`write_yaml` cover the rest.

A failed write (no space, no permission, a quota) raises :class:`FileWriteError` naming the
file, the cause, the bytes the file needs (when the writer knows) and the bytes left free on
its file system (:func:`write_errors`, also for files written in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from mutualctr.errors import MutualCTRError


class FileWriteError(MutualCTRError):
    """A file could not be written (no space, no permission, a quota); the old one is intact."""


def _write_error(path: Path, err: OSError, needed: int | None) -> FileWriteError:
    """The error for a failed write of ``path``: the cause, the bytes needed, the bytes free."""
    space = [] if needed is None else [f"needs at least {needed} bytes"]
    with suppress(OSError):
        space.append(f"{shutil.disk_usage(path.parent).free} bytes free")
    detail = f" ({', '.join(space)})" if space else ""
    return FileWriteError(
        f"cannot write {path}: {err.strerror or err}{detail}; the previous file (if any) is "
        "unchanged"
    )


@contextmanager
def write_errors(path: Path, partial: Path, needed: int | None = None) -> Iterator[None]:
    """An ``OSError`` in the block (writing ``partial``, the bytes meant for ``path``) removes
    ``partial`` and becomes a :class:`FileWriteError` naming ``path``.

    ``needed``: the file's size in bytes, when known. The free space is measured once
    ``partial`` is gone.
    """
    try:
        yield
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise _write_error(path, err, needed) from err


@contextmanager
def atomic_path(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``; when the block ends without error it replaces ``path``.

    The temporary name keeps ``path``'s suffix, so writers that add one (``np.savez``) or pick a
    format from it (``savefig``) behave as with ``path`` itself. ``needed``: the file's size in
    bytes, when known, for the error message.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        with write_errors(path, tmp, needed):
            yield tmp
            _fsync(tmp, os.O_RDONLY)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, os.O_RDONLY)


def _fsync(target: Path, flags: int) -> None:
    fd = os.open(target, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DigestWriter:
    """A binary handle whose writes are counted and hashed (sha256) on the way to the file.

    It also keeps the ``OSError`` of a failed write: ``torch.save`` turns it into a
    ``RuntimeError`` ("unexpected pos"), and :attr:`error` lets its caller report the real cause.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = 0
        self.error: OSError | None = None
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        try:
            self.handle.write(data)
        except OSError as err:
            self.error = err
            raise
        self._sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.handle.flush()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


def sha256(path: str | Path, block: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (one trailing newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML, keys in their given order, to ``path`` atomically."""
    write_text(path, yaml.safe_dump(data, sort_keys=False))
