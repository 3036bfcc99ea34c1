"""A one-line progress display on stderr (no tqdm): loss and rows per second.

On a terminal the line is redrawn in place every few steps; otherwise nothing is printed per
step, only the per-epoch summaries the trainer writes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, epoch: int, epochs: int, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = enabled and self.stream.isatty()
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.start = time.perf_counter()
        self.rows = 0

    def update(self, step: int, rows: int, loss: float | None) -> None:
        """Count ``rows`` more rows; redraw when ``loss`` is given (the caller decides when)."""
        self.rows += rows
        if self.live and loss is not None:
            self.stream.write(
                f"\repoch {self.epoch}/{self.epochs}  {step}/{self.total}  loss {loss:.5f}  "
                f"{self.rows_per_second / 1000:.1f}k rows/s "
            )
            self.stream.flush()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
