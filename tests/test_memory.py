"""specinv.memory: glibc keeps freed blocks in its heap after keep_freed_memory()."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pytest
import torch

from specinv.memory import MMAP_THRESHOLD_BYTES, keep_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    try:
        fn = libc.mallinfo2
    except AttributeError:
        pytest.skip("C library without mallinfo2 (glibc < 2.33 or not glibc)")
    fn.restype = _MallInfo2
    return fn


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_block_stays_in_the_heap():
    mallinfo2 = _mallinfo2()
    if not keep_freed_memory():
        pytest.skip("mallopt not available or refused (not glibc)")
    size = 16 * 1024 * 1024  # above glibc's default 128 KiB threshold
    before = mallinfo2()
    block = torch.empty(size, dtype=torch.uint8)
    during = mallinfo2()
    # served from the heap (arena), not by a separate mmap
    assert during.hblkhd - before.hblkhd < size
    assert during.uordblks - before.uordblks >= size
    del block
    after = mallinfo2()
    # freed, and kept in the heap for the next allocation instead of given back
    assert after.fordblks >= size
    assert after.arena >= during.arena


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="mmap_threshold"):
        keep_freed_memory(mmap_threshold=MMAP_THRESHOLD_BYTES + 1)
    with pytest.raises(ValueError, match="trim_threshold"):
        keep_freed_memory(trim_threshold=0)
