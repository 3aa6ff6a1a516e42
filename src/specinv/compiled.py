"""Numba, as specinv's compiled kernels use it.

* Compiled code is cached on disk, in ``numba/<hash>`` under :func:`specinv.cache.cache_dir`
  (not beside the sources), unless ``NUMBA_CACHE_DIR`` says otherwise.  ``<hash>`` is a
  hash of the sources of all kernel modules (``*_kernel.py``) and of this module, because
  numba checks only the file of the function it caches, not the kernels that function
  inlines from other files: a change to any kernel starts a fresh cache.
* Kernels may contract a multiplication and an addition into one fused multiply-add
  (LLVM's ``contract`` flag, one rounding instead of two); no other fast-math licence.
* Parallel loops run on numba's "workqueue" threading layer (its idle threads sleep rather
  than spin, which keeps run times steady on a shared machine; no second OpenMP runtime
  next to torch's), unless ``NUMBA_THREADING_LAYER`` says otherwise.  Callers pass the
  thread count (:func:`parallel`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numba

from .cache import cache_dir


def _kernel_sources_hash() -> str:
    """Hash of the kernel modules and of this one (whose options change the code)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(Path(__file__).parent.rglob("*_kernel.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


if "NUMBA_CACHE_DIR" not in os.environ:
    numba.config.CACHE_DIR = str(cache_dir() / "numba" / _kernel_sources_hash())
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"


def jit(**options):
    """``numba.njit`` with the on-disk cache (decorator)."""
    return numba.njit(cache=True, fastmath={"contract"}, **options)


@contextlib.contextmanager
def parallel(threads: int):
    """Run the parallel kernels called inside on ``threads`` threads (at most numba's
    pool; the workqueue layer gives each thread an equal share of the iterations)."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    yield
