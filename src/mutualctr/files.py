"""Atomic file writes: the one way the project writes a file that a reader takes as complete.

Every file goes to a temporary name in the target's folder, is flushed and fsync'ed, then
renamed over the target with ``os.replace`` (atomic on POSIX), and the folder is fsync'ed so the
new name survives a power cut. A crash, a kill or a full disk mid-write leaves the previous file
(or none), never a half-written one, and the temporary file is removed.

``atomic_path`` serves writers that want a path (``torch.save``, ``np.savez``, pyarrow, a
figure); :func:`write_text`, :func:`write_json` and :func:`write_yaml` cover the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from mutualctr.errors import MutualCTRError


class FileWriteError(MutualCTRError):
    """A file could not be written (no space, no permission, a quota); the old one is intact."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; when the block ends without error it replaces ``path``.

    The temporary name keeps ``path``'s suffix, so writers that add one (``np.savez``) or pick a
    format from it (``savefig``) behave as with ``path`` itself.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise FileWriteError(
            f"cannot write {path}: {err.strerror or err}; the previous file (if any) is "
            "unchanged"
        ) from err
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


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (one trailing newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML, keys in their given order, to ``path`` atomically."""
    write_text(path, yaml.safe_dump(data, sort_keys=False))
