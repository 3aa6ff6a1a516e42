"""Measured core-loss spectra for the networks and the quantification.

A spectrum is read from two columns of text (energy loss in eV, counts; any dispersion,
negative counts of a dark-subtracted spectrum allowed) and put on the networks' channels as
the paper does for its experimental spectra (Annys et al. 2023, Fig. 3): resampled by a
cubic spline onto whole eV inside its measured range, zero outside it (the zero padding to
0–3071 eV), as counts per eV, negative values set to zero; the networks' preprocessing then
divides it by its maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

from ...config.errors import ConfigError
from ...fileio import read_two_columns

#: fewest points a measured spectrum may have
MIN_POINTS = 20


@dataclass(frozen=True)
class MeasuredSpectrum:
    """``energy_eV`` (strictly increasing), ``counts`` and the file it came from."""

    energy_eV: np.ndarray
    counts: np.ndarray
    source: str


def read_spectrum(path: str | Path) -> MeasuredSpectrum:
    """A two-column spectrum (energy loss in eV, counts); ConfigError naming the file and
    the line (:func:`specinv.fileio.read_two_columns`)."""
    energy, counts = read_two_columns(
        path,
        ("energy", "eV", "energy loss in eV"),
        "counts",
        min_points=MIN_POINTS,
        negative_y=True,
        what="spectrum",
    )
    return MeasuredSpectrum(energy, counts, str(path))


def on_channels(spectrum: MeasuredSpectrum, n_channels: int = 3072) -> np.ndarray:
    """Counts per eV [n_channels] on the channels 0 … n−1 eV (module docstring).

    Raises:
        ConfigError: the measured range holds fewer than 35 whole-eV channels of 0 … n−1
            (no edge could show in it: 10 eV before an onset and 25 eV after it).
    """
    e, y = spectrum.energy_eV, spectrum.counts
    first, last = max(int(np.ceil(e[0])), 0), min(int(np.floor(e[-1])), n_channels - 1)
    if last - first + 1 < 35:
        raise ConfigError(
            f"{spectrum.source}: energies {e[0]:g}-{e[-1]:g} eV cover {max(last - first + 1, 0)} "
            f"whole-eV channels of 0-{n_channels - 1} eV; expected at least 35"
        )
    dispersion = np.gradient(e)  # eV per measured channel
    per_ev = CubicSpline(e, y / dispersion)(np.arange(first, last + 1))
    out = np.zeros(n_channels)
    out[first : last + 1] = np.maximum(per_ev, 0.0)
    return out
