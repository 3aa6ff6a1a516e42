"""Process-level memory-allocator settings for long batch jobs.

PyTorch's CPU tensors are allocated with the C library's ``malloc``.  With glibc's
defaults a freed block of more than 128 KiB (raised dynamically up to the largest freed
block) is returned to the operating system, so the next allocation of that size costs fresh
page faults: for the batched simulator, whose calls allocate and free many mid-sized
tensors, that first touch of memory took a quarter to almost half of a two-layer
spectrum's time (benchmarks/RESULTS.md).  :func:`keep_freed_memory` tells glibc to serve
blocks up to 32 MiB from its heap and to keep freed memory there for reuse.

This changes the whole process, so the library never calls it by itself: entry points
(the ``specinv`` command, the workflow's job scripts, the benchmarks) do, and so can a
user's own script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Largest block glibc accepts as its mmap threshold on 64-bit systems (32 MiB).
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Freed memory kept in the heap before glibc gives its top back to the system (1 GiB).
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Make glibc's ``malloc`` serve blocks below ``mmap_threshold`` bytes from its heap and
    keep up to ``trim_threshold`` bytes of freed heap memory for reuse.

    Returns True when both settings took effect, False on a C library without ``mallopt``
    (macOS, Windows, musl) or when glibc refused a value (nothing is changed then).
    """
    if not 0 < mmap_threshold <= MMAP_THRESHOLD_BYTES or not 0 < trim_threshold < 2**31:
        raise ValueError(
            f"mmap_threshold must be in (0, {MMAP_THRESHOLD_BYTES}] and "
            f"trim_threshold in (0, 2**31), got {mmap_threshold}, "
            f"{trim_threshold}"
        )
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
