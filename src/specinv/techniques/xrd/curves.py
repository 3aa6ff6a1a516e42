"""Reading measured diffraction curves: two columns (angle in degrees, intensity) of text.

The format of most diffractometers' ASCII exports and of RaDMaX: one point per line, the
angle (2θ or ω, degrees) and the intensity (counts or counts per second), separated by
spaces, tabs, a comma or a semicolon; lines starting with ``#``, ``;`` or ``!`` and a
header line of names are skipped; columns beyond the second are ignored.  Everything is
checked and errors name the file and the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config.errors import ConfigError
from ...config.files import MAX_FILE_BYTES

#: fewest points a curve may have
MIN_POINTS = 10
_SPLIT = re.compile(r"[\s,;]+")
_COMMENT = ("#", ";", "!", "%")


@dataclass(frozen=True)
class MeasuredCurve:
    """A measured curve: ``angle_deg`` (strictly increasing) and ``intensity`` (>= 0), with
    the file it came from."""

    angle_deg: np.ndarray
    intensity: np.ndarray
    source: str

    @property
    def step_deg(self) -> float:
        """The median angular step (degrees)."""
        return float(np.median(np.diff(self.angle_deg)))

    def __len__(self) -> int:
        return len(self.angle_deg)


def _numbers(fields: list[str]) -> tuple[float, float] | None:
    try:
        return float(fields[0]), float(fields[1])
    except (ValueError, IndexError):
        return None


def read_curve(path: str | Path) -> MeasuredCurve:
    """Read a two-column curve (angle in degrees, intensity).

    Raises:
        ConfigError: naming the file and line: unreadable or not text, a line that is not
            two numbers (after an optional header), non-finite or negative intensities,
            angles that do not increase, fewer than :data:`MIN_POINTS` points.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the curve ({exc.strerror})") from None
    if len(raw) > 64 * MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than 64 MiB; expected a two-column text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # headers of instrument exports; numbers are ASCII
    if "\x00" in text:
        raise ConfigError(f"{path}: a binary file; expected two columns of text")
    angles, values = [], []
    first_data = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(_COMMENT):
            continue
        pair = _numbers(_SPLIT.split(stripped))
        if pair is None:
            if first_data is None and not angles:
                continue  # a header line of names
            raise ConfigError(
                f"{path}, line {number}: expected two numbers (angle in degrees, intensity), "
                f"got {stripped[:60]!r}"
            )
        first_data = first_data or number
        angle, value = pair
        if not (math.isfinite(angle) and math.isfinite(value)):
            raise ConfigError(f"{path}, line {number}: expected finite numbers, got {stripped!r}")
        if value < 0:
            raise ConfigError(f"{path}, line {number}: intensity {value:g}; expected counts >= 0")
        if angles and angle <= angles[-1]:
            raise ConfigError(
                f"{path}, line {number}: angle {angle:g} deg after {angles[-1]:g}; expected "
                "strictly increasing angles"
            )
        angles.append(angle)
        values.append(value)
    if len(angles) < MIN_POINTS:
        raise ConfigError(
            f"{path}: {len(angles)} data points; expected at least {MIN_POINTS} lines of "
            "two numbers (angle in degrees, intensity)"
        )
    return MeasuredCurve(np.asarray(angles), np.asarray(values), str(path))
