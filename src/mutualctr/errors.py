"""User-facing errors: the command line prints their message and exits non-zero, no traceback."""

from __future__ import annotations


class MutualCTRError(Exception):
    """Base class for errors caused by the user's input, config or environment."""


class ConfigError(MutualCTRError):
    """A configuration value is unknown, of the wrong type or out of range."""


class DataError(MutualCTRError):
    """Bad input data. Names the file, the 1-based line and the field where known; for rows
    given in memory (a data frame or an Arrow table) the 0-based ``row`` position, as
    ``frame.iloc[row]`` finds it, instead of a file and line."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None, row: int | None = None,
    ) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        self.row = row
        where = ", ".join(
            part for part in (
                f"file {file}" if file is not None else "",
                f"line {line}" if line is not None else "",
                f"row {row}" if row is not None else "",
                f"field {field!r}" if field is not None else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)
