"""Process-level speed settings for the command line and benchmarks (opt-in for libraries).

PyTorch on CPU allocates and frees many large temporary tensors. glibc's malloc hands
blocks above its mmap threshold straight back to the kernel, so every step pays for fresh
page faults (seen here: 2x slower batched gradient ascent, mostly system time). Raising the
mmap and trim thresholds keeps that memory in the heap for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_done = False


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied (Linux/glibc)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _done = ok
    return ok
