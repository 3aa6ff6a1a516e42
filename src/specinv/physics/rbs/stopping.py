"""Stopping cross sections: SRIM-2013 electronic stopping (via ``lunasrim``) and ZBL nuclear.

Electronic stopping is tabulated once per (ion Z1, target Z2) on a fixed grid that is
uniform in ln(E/u) and cached as a small ``.npy`` file outside the repository (the user
cache directory, or ``$SPECINV_CACHE_DIR``).  The simulator then works on the same grid
(scaled by the ion mass), so no interpolation of the SRIM values themselves is needed.

Units: energies in keV (or keV/u for the table axis), stopping in eV/(1e15 atoms/cm²).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ...cache import cache_dir
from ...fileio import atomic_path
from .constants import BOHR_RADIUS_CM, E2_KEV_CM, TFU, ZBL_SCREENING_PREFACTOR
from .isotopes import Species

LUNASRIM_VERSION = "1.0.0"
#: atomic numbers (of ion and target) that the SRIM-2013 stopping tables cover
SRIM_Z_MIN, SRIM_Z_MAX = 1, 92


@dataclass(frozen=True)
class LogGrid:
    """Energy-per-nucleon grid uniform in ln(E/u): ``E_i = e_min · exp(i · step)``."""

    e_min_keV_per_u: float = 1.0
    decades: int = 5
    points_per_decade: int = 100

    @property
    def size(self) -> int:
        return self.decades * self.points_per_decade + 1

    @property
    def step(self) -> float:
        """Spacing h of the grid in ln(E)."""
        return math.log(10.0) / self.points_per_decade

    def values(self) -> np.ndarray:
        """Grid energies in keV/u (float64)."""
        return self.e_min_keV_per_u * np.exp(self.step * np.arange(self.size))

    @property
    def key(self) -> str:
        return f"{self.e_min_keV_per_u:g}-{self.decades}-{self.points_per_decade}"


DEFAULT_GRID = LogGrid()


def _lunasrim_electronic(
    z1: int, z2: int, energies_keV_per_u: np.ndarray, phase: int
) -> np.ndarray:
    os.environ.setdefault("LUNASRIM_NO_NATIVE_MATH", "1")
    from lunasrim import data_files
    from lunasrim import stopping as srim

    data = data_files.load_scoef()
    # lunasrim takes E and the ion mass but only uses E/m; any mass gives the same table
    return np.array(
        [srim.electronic_stopping(z1, 1.0, z2, float(e), phase, data) for e in energies_keV_per_u]
    )


def electronic_stopping_table(
    z1: int, z2: int, grid: LogGrid = DEFAULT_GRID, phase: int = 0
) -> np.ndarray:
    """SRIM-2013 electronic stopping of ion Z1 in element Z2 on ``grid``, eV/TFU.

    ``phase`` 0 is SRIM's solid-target stopping, 1 its gas-target stopping.  The table
    is computed with lunasrim on first use and cached.
    """
    for name, z in (("ion Z1", z1), ("target Z2", z2)):
        if not SRIM_Z_MIN <= z <= SRIM_Z_MAX:
            raise ValueError(f"SRIM-2013 stopping: {name} = {z} outside {SRIM_Z_MIN}..{SRIM_Z_MAX}")
    path = (
        cache_dir()
        / "stopping"
        / (
            f"srim2013_lunasrim-{LUNASRIM_VERSION}_z1-{z1}_z2-{z2}_phase-{phase}_grid-{grid.key}.npy"
        )
    )
    if path.exists():
        table = np.load(path)
        if table.shape == (grid.size,):
            return table
    table = _lunasrim_electronic(z1, z2, grid.values(), phase)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, table)
    return table


def zbl_reduced_energy(z1: int, m1: float, z2: int, m2: float, energy_keV):
    """ZBL reduced energy ε = a_U m2 E / (Z1 Z2 e² (m1 + m2))."""
    a_u = ZBL_SCREENING_PREFACTOR * BOHR_RADIUS_CM / (z1**0.23 + z2**0.23)
    return a_u * m2 * energy_keV / (z1 * z2 * E2_KEV_CM * (m1 + m2))


def zbl_nuclear_stopping(z1: int, m1: float, z2: int, m2: float, energy_keV) -> np.ndarray:
    """ZBL universal nuclear stopping of ion (Z1, m1) on target isotope (Z2, m2), eV/TFU.

    S_n = 4π a_U Z1 Z2 e² m1/(m1+m2) · s_n(ε), with the universal reduced stopping
    s_n = ln(1 + 1.1383 ε) / (2 (ε + 0.01321 ε^0.21226 + 0.19593 ε^0.5)) for ε ≤ 30 and
    ln(ε)/(2ε) above (Ziegler, Biersack & Littmark 1985).
    """
    eps = np.asarray(zbl_reduced_energy(z1, m1, z2, m2, np.asarray(energy_keV, dtype=float)))
    low = np.log1p(1.1383 * eps) / (2.0 * (eps + 0.01321 * eps**0.21226 + 0.19593 * np.sqrt(eps)))
    high = np.log(np.maximum(eps, 30.0)) / (2.0 * np.maximum(eps, 30.0))
    sn = np.where(eps <= 30.0, low, high)
    a_u = ZBL_SCREENING_PREFACTOR * BOHR_RADIUS_CM / (z1**0.23 + z2**0.23)
    prefactor_keV_cm2 = 4.0 * math.pi * a_u * z1 * z2 * E2_KEV_CM * m1 / (m1 + m2)
    return prefactor_keV_cm2 * 1e3 * TFU * sn


def species_nuclear_stopping(z1: int, m1: float, sp: Species, energy_keV) -> np.ndarray:
    """Abundance-weighted ZBL nuclear stopping of an element or isotope, eV/TFU."""
    return sum(
        iso.abundance * zbl_nuclear_stopping(z1, m1, iso.Z, iso.mass_u, energy_keV)
        for iso in sp.isotopes
    )
