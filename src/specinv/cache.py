"""Where specinv keeps what it generates at run time (stopping tables, compiled kernels):
``$SPECINV_CACHE_DIR`` or the user cache directory, never the source tree."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Directory of generated tables: ``$SPECINV_CACHE_DIR`` or the user cache directory."""
    env = os.environ.get("SPECINV_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("specinv"))
