"""Small file helpers: atomic writes so that an interrupted run never leaves a partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    The parent directory is created.  On an exception the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; use the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_path(path: str | Path, key: str) -> Path:
    """Refuse an output path that cannot be written as a file (a folder, or a parent that is
    a file) before any work starts.

    Raises:
        ConfigError: naming ``key`` and the path.
    """
    from .config.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{key}: {str(path)!r} is a folder; expected a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{key}: {str(parent)!r} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{key}: cannot write in {str(parent)!r} (permission denied)")
            break
    return path


def write_csv_columns(path: str | Path, columns: dict, fmt: str | list[str] = "%.10g") -> Path:
    """Named columns (name -> 1-D array, equal lengths) as a CSV with a header line, written
    atomically; ``fmt``: one printf format, or one per column."""
    import numpy as np

    with atomic_path(path) as tmp:
        np.savetxt(
            tmp,
            np.column_stack([np.asarray(v) for v in columns.values()]),
            delimiter=",",
            header=",".join(columns),
            comments="",
            fmt=fmt,
        )
    return Path(path)
