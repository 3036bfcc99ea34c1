"""A full disk on demand: ENOSPC injected into the low-level writes of the project's writers."""

from __future__ import annotations

import builtins
import errno
from pathlib import Path
from typing import Any

import pytest

from mutualctr import files

MESSAGE = "No space left on device"


def enospc() -> OSError:
    return OSError(errno.ENOSPC, MESSAGE)


class _FillingHandle:
    """A binary file that takes ``room`` bytes, then fails every write with ENOSPC."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        if self.room <= 0:
            raise enospc()
        taken = self.handle.write(data[: self.room])
        self.room -= taken
        return taken

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _FillingHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_filling_up(room: int) -> Any:
    """An ``open`` whose binary write handles take ``room`` bytes, then fail with ENOSPC."""

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 - returned
        return _FillingHandle(handle, room) if "w" in mode and "b" in mode else handle

    return fake_open


class FsyncFails:
    """Fails the ``at``-th (1-based) completed write of a file ``<prefix>...<suffix>`` (a name
    without other dots) with ENOSPC.

    :func:`mutualctr.files.atomic_path` fsyncs every temporary file before renaming it: the
    point where a full disk or a quota shows at the latest. ``target`` is the file that failed
    and ``before`` its bytes at that moment (``None``: there was none).
    """

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, prefix: str, suffix: str, at: int = 1,
    ) -> None:
        self.prefix, self.suffix, self.at, self.seen = prefix, suffix, at, 0
        self.target: Path | None = None
        self.before: bytes | None = None
        real = files._fsync
        monkeypatch.setattr(files, "_fsync", lambda path, flags: self._fsync(real, path, flags))

    def _fsync(self, real: Any, path: Path, flags: int) -> None:
        name = path.name
        if name.startswith(f".{self.prefix}") and name.endswith(f".tmp{self.suffix}"):
            self.seen += 1
            if self.seen == self.at:
                self.target = path.with_name(name[1:].split(".")[0] + self.suffix)
                self.before = self.target.read_bytes() if self.target.exists() else None
                raise enospc()
        real(path, flags)


def temporary_files(root: Path) -> list[Path]:
    """Files left under the temporary names of :func:`mutualctr.files.atomic_path`."""
    return [p for p in root.rglob(".*") if ".tmp" in p.name]
