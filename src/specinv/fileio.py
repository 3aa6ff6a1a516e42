"""Small file helpers: atomic writes so that an interrupted run never leaves a partial file."""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


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


_SPLIT = re.compile(r"[\s,;]+")
_COMMENT = ("#", ";", "!", "%")


def _pair(fields: list[str]) -> tuple[float, float] | None:
    try:
        return float(fields[0]), float(fields[1])
    except (ValueError, IndexError):
        return None


def read_two_columns(
    path: str | Path,
    x: tuple[str, str, str],
    y: str,
    *,
    min_points: int = 10,
    negative_y: bool = False,
    what: str = "file",
) -> tuple[np.ndarray, np.ndarray]:
    """Two columns of numbers from a text file: one point per line, separated by spaces,
    tabs, a comma or a semicolon; lines starting with ``#``, ``;``, ``!`` or ``%`` and a
    header line of names are skipped; columns beyond the second are ignored.

    ``x``: (name, unit, description) of the first column (``("angle", "deg", "angle in
    degrees")``), which must increase strictly; ``y``: the name of the second, which must
    be >= 0 unless ``negative_y``; ``what`` the file is (a "curve") in the messages.

    Raises:
        ConfigError: naming the file and the line: unreadable or binary, a line that is not
            two numbers (after an optional header), non-finite numbers, a negative y, an x
            that does not increase, fewer than ``min_points`` points.
    """
    import numpy as np

    from .config.errors import ConfigError
    from .config.files import MAX_FILE_BYTES

    name, unit, description = x
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(raw) > 64 * MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than 64 MiB; expected a two-column text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # headers of instrument exports; numbers are ASCII
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file; expected two columns of text")
    xs, ys = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(_COMMENT):
            continue
        pair = _pair(_SPLIT.split(stripped))
        if pair is None:
            if not xs:
                continue  # a header line of names
            raise ConfigError(
                f"{path}, line {number}: expected two numbers ({description}, {y}), got "
                f"{stripped[:60]!r}"
            )
        a, b = pair
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ConfigError(f"{path}, line {number}: expected finite numbers, got {stripped!r}")
        if b < 0 and not negative_y:
            raise ConfigError(f"{path}, line {number}: {y} {b:g}; expected counts >= 0")
        if xs and a <= xs[-1]:
            raise ConfigError(
                f"{path}, line {number}: {name} {a:g} {unit} after {xs[-1]:g}; expected "
                f"strictly increasing {name}s"
            )
        xs.append(a)
        ys.append(b)
    if len(xs) < min_points:
        raise ConfigError(
            f"{path}: {len(xs)} data points; expected at least {min_points} lines of two "
            f"numbers ({description}, {y})"
        )
    return np.asarray(xs), np.asarray(ys)
