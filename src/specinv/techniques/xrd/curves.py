"""Reading measured diffraction curves: two columns (angle in degrees, intensity) of text.

The format of most diffractometers' ASCII exports and of RaDMaX: one point per line, the
angle (2θ or ω, degrees) and the intensity (counts or counts per second), separated by
spaces, tabs, a comma or a semicolon; lines starting with ``#``, ``;`` or ``!`` and a
header line of names are skipped; columns beyond the second are ignored.  Everything is
checked and errors name the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...fileio import read_two_columns

#: fewest points a curve may have
MIN_POINTS = 10


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


def read_curve(path: str | Path) -> MeasuredCurve:
    """Read a two-column curve (angle in degrees, intensity).

    Raises:
        ConfigError: naming the file and line: unreadable or not text, a line that is not
            two numbers (after an optional header), non-finite or negative intensities,
            angles that do not increase, fewer than :data:`MIN_POINTS` points.
    """
    angles, values = read_two_columns(
        path,
        ("angle", "deg", "angle in degrees"),
        "intensity",
        min_points=MIN_POINTS,
        what="curve",
    )
    return MeasuredCurve(angles, values, str(path))
