"""Keep freed memory in the training process instead of handing it back to the system.

glibc's ``malloc`` serves a block above its mmap threshold (which grows to at most 32 MiB) with
a fresh ``mmap`` and returns it with ``munmap`` on ``free``. A training step allocates such
blocks every time (the dense gradient of a large embedding table, a group's stacked
activations), so every step first-touches them again: one page fault per 4 KiB page, about 10k
for one 39 MiB table gradient. On the project's machines, on a 610k-value store, keeping the
memory took 4-12% off one DeepFM's float32 step, 14-35% off a bfloat16 one, and brought a
batched group of four from 5.1-5.6x one model's step to 3.4-3.9x (docs/benchmarks.md,
"Batched groups"). Telling glibc to serve every block from its heap and to keep the heap's
free top (``mallopt``) lets the next step reuse the same, already mapped pages: what jemalloc
or tcmalloc, which PyTorch's CPU tuning guide recommends, do without being preloaded. The price
is that the process keeps its peak memory until it exits, which a training run reaches every
step anyway, and that small long-lived arrays allocated between large freed blocks fragment the
heap instead of being returned: evaluation therefore fills one output array per prediction
(:func:`mutualctr.training.trainer.predict_split`) rather than keeping an array per batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
KEEP_TOP_BYTES = 2**31 - 1  # mallopt takes an int: the largest trim threshold it accepts

_retained = False


def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and never trim it (glibc on Linux; elsewhere nothing
    is changed). Returns whether the setting is in effect."""
    global _retained
    if _retained:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    _retained = bool(libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_TOP_BYTES))
    return _retained
