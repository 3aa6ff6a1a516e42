"""Core-loss edge sets of the elements Be … Bi and their photoabsorption cross sections.

Tables (read through xraydb, BSD licence, which ships them in its own database):

* edge (binding) energies of every shell: Elam, Ravel & Sieber, Radiat. Phys. Chem. 63
  (2002), ``xraydb.xray_edges``, each moved to where Chantler's cross section rises
  steepest within a few eV of it (:func:`chantler_edge_eV`), so that onsets and cross
  sections agree; for the light elements this is the solid-state value EELS users know
  (O K 532 eV, N K 401 eV, where the Elam table gives the free atom's 543 and 410 eV).
  They stand in for the paper's onsets (Gatan's EELS atlas, not open);
* photoabsorption cross sections: Chantler, J. Phys. Chem. Ref. Data 29 (2000), 10 eV –
  450 keV with every shell's edge, ``xraydb.mu_chantler``;
* core-hole widths: Keski-Rahkonen & Krause, At. Data Nucl. Data Tables 14 (1974),
  ``xraydb.core_width``;
* atomic masses: ``xraydb.atomic_mass``.

An *edge set* is what an EELS user calls one edge of an element: the K edge, the L edges
(L3, L2, L1), the M edges (M5 … M1) or the N edges (N5 … N1).  Its onset is the lowest of
its shells' energies.  A set belongs to the dataset when its onset lies where a spectrum can
show it (:data:`ONSET_RANGE_EV`: 10 eV after the earliest spectrum start, 25 eV before the
end of the 0–3071 eV range).

The cross section of a set is what it adds to the element's photoabsorption: σ(E) minus the
power law that continues σ from just below the set's onset; above the next set's onset the
set keeps the difference of the two power laws (its tail under the next edge).  The sets'
contributions then add up to σ minus the continuation of what lies below the first set
(valence and shallower shells, which a spectrum shows as part of its background).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

#: atomic numbers of the elements a spectrum can contain: Be (4) … Bi (83), as the paper
ELEMENT_Z = tuple(range(4, 84))
#: the dataset's spectra cover 0 … 3071 eV; a set is in the dataset when its onset lies in
#: [75 + 10, 3071 − 25] eV (the earliest start plus the 10 eV the paper keeps before an edge,
#: the last channel minus the 25 eV it keeps after)
ONSET_RANGE_EV = (85.0, 3046.0)
#: the shells of each edge set, deepest first
SET_SHELLS = {
    "K": ("K",),
    "L": ("L1", "L2", "L3"),
    "M": ("M1", "M2", "M3", "M4", "M5"),
    "N": ("N1", "N2", "N3", "N4", "N5"),
}
#: the shells whose onsets carry white lines (spin-orbit pairs into empty d or f states):
#: L3/L2 of the 3d metals Sc … Cu (and 4d Y … Pd) and M5/M4 of the lanthanides La … Yb
WHITE_LINES = {
    "L": (tuple(range(21, 30)) + tuple(range(39, 47)), ("L3", "L2")),
    "M": (tuple(range(57, 71)), ("M5", "M4")),
}
#: shells tabulated below this energy are placeholders in the Elam table (1–3 eV)
_PLACEHOLDER_EV = 10.0
#: Avogadro's number (1/mol)
_AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class EdgeSet:
    """One edge set of one element.

    Attributes:
        symbol, z: the element.
        name: ``K``, ``L``, ``M`` or ``N``; label ``"Ti L"``.
        onset_eV: lowest shell energy of the set (its edge onset).
        shells: (shell, energy eV) of the set's shells above the placeholder energies.
        white_lines_eV: energies of the set's white lines (empty for none).
        core_width_eV: core-hole width (FWHM) of the onset shell.
    """

    symbol: str
    z: int
    name: str
    onset_eV: float
    shells: tuple[tuple[str, float], ...]
    white_lines_eV: tuple[float, ...]
    core_width_eV: float

    @property
    def label(self) -> str:
        return f"{self.symbol} {self.name}"


@cache
def element_symbols() -> tuple[str, ...]:
    """Symbols of :data:`ELEMENT_Z`, in order."""
    import xraydb

    return tuple(xraydb.atomic_symbol(z) for z in ELEMENT_Z)


#: an edge needs a rise of log σ steeper than this (1/eV) to be moved to Chantler's energy
_MIN_RISE_PER_EV = 0.02


def chantler_edge_eV(symbol: str, energy_eV: float, half_window_eV: float) -> float:
    """Where the Chantler cross section of ``symbol`` rises steepest (largest d ln σ/dE)
    within ``energy_eV`` ± ``half_window_eV``; ``energy_eV`` itself where nothing there
    rises faster than :data:`_MIN_RISE_PER_EV` (delayed edges, e.g. Bi N4,5)."""
    lo = max(energy_eV - half_window_eV, 10.0)
    e = np.arange(lo, energy_eV + half_window_eV, 0.05)
    if e.size < 3:
        return energy_eV
    rise = np.gradient(np.log(photoabsorption_cm2(symbol, e)), e)
    k = int(np.argmax(rise))
    return float(e[k]) if rise[k] > _MIN_RISE_PER_EV else energy_eV


@cache
def shell_energies_eV(symbol: str) -> dict[str, float]:
    """Edge energy of every shell of ``symbol`` above the table's placeholders, each moved to
    Chantler's edge (:func:`chantler_edge_eV`, within 12 eV and less than half the way to
    the nearest other shell)."""
    import xraydb

    elam = {
        s: float(e.energy)
        for s, e in xraydb.xray_edges(symbol).items()
        if e.energy >= _PLACEHOLDER_EV
    }
    out = {}
    for shell, energy in elam.items():
        gaps = [abs(energy - other) for s, other in elam.items() if s != shell]
        gaps = [g for g in gaps if g > 0.5]
        half = min([12.0, *(0.45 * g for g in gaps)])
        out[shell] = chantler_edge_eV(symbol, energy, half)
    return out


def _element_sets(symbol: str, z: int) -> list[EdgeSet]:
    import xraydb

    edges = shell_energies_eV(symbol)
    widths = xraydb.core_width(symbol)
    sets = []
    for name, shells in SET_SHELLS.items():
        found = tuple((s, edges[s]) for s in shells if s in edges)
        if not found:
            continue
        onset_shell, onset = min(found, key=lambda se: se[1])
        wl_z, wl_shells = WHITE_LINES.get(name, ((), ()))
        white = tuple(edges[s] for s in wl_shells if s in edges) if z in wl_z else ()
        sets.append(
            EdgeSet(
                symbol=symbol,
                z=z,
                name=name,
                onset_eV=onset,
                shells=found,
                white_lines_eV=white,
                core_width_eV=float(widths.get(onset_shell, 0.1)),
            )
        )
    return sorted(sets, key=lambda s: s.onset_eV)


@cache
def all_edge_sets() -> tuple[EdgeSet, ...]:
    """Every element's edge sets (any onset), by element then onset."""
    return tuple(
        s
        for z, sym in zip(ELEMENT_Z, element_symbols(), strict=True)
        for s in _element_sets(sym, z)
    )


@cache
def dataset_edge_sets() -> tuple[EdgeSet, ...]:
    """The edge sets whose onsets lie in :data:`ONSET_RANGE_EV` (what spectra can show)."""
    lo, hi = ONSET_RANGE_EV
    return tuple(s for s in all_edge_sets() if lo <= s.onset_eV <= hi)


def photoabsorption_cm2(symbol: str, energy_eV: np.ndarray) -> np.ndarray:
    """Photoabsorption cross section per atom (cm²) of element ``symbol`` at ``energy_eV``
    (Chantler; energies ≥ 10 eV)."""
    import xraydb

    e = np.asarray(energy_eV, dtype=float)
    if np.any(e < 10.0):
        raise ValueError(f"energy_eV: Chantler's table starts at 10 eV, got {e.min():g}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu = np.asarray(xraydb.mu_chantler(symbol, e, photo=True), dtype=float)  # cm²/g
    return mu * xraydb.atomic_mass(symbol) / _AVOGADRO


def _pre_edge_power_law(symbol: str, onset_eV: float) -> tuple[float, float]:
    """(log σ at the onset, exponent) of the power law through σ in the window
    [0.85, 0.98] × onset below an edge (log–log least squares)."""
    e = np.geomspace(max(0.85 * onset_eV, 10.5), 0.98 * onset_eV, 24)
    logs = np.log(photoabsorption_cm2(symbol, e))
    slope, intercept = np.polyfit(np.log(e / onset_eV), logs, 1)
    return float(intercept), float(slope)


def set_cross_sections_cm2(symbol: str, energy_eV: np.ndarray) -> dict[str, np.ndarray]:
    """Photoabsorption cross section (cm² per atom) of each of the element's edge sets with
    an onset above 10.5/0.85 eV at ``energy_eV`` (the telescoping split of the module
    docstring; each non-negative, zero below its onset)."""
    e = np.asarray(energy_eV, dtype=float)
    sets = [s for s in _element_sets(symbol, 0) if 0.85 * s.onset_eV >= 10.5]
    sigma = photoabsorption_cm2(symbol, np.maximum(e, 10.0))
    laws = [_pre_edge_power_law(symbol, s.onset_eV) for s in sets]

    def law(k: int) -> np.ndarray:
        c, p = laws[k]
        return np.exp(c + p * np.log(np.maximum(e, 1e-3) / sets[k].onset_eV))

    out = {}
    for k, s in enumerate(sets):
        upper = law(k + 1) if k + 1 < len(sets) else None
        next_onset = sets[k + 1].onset_eV if k + 1 < len(sets) else np.inf
        here = np.where(e < next_onset, sigma, upper if upper is not None else sigma)
        part = np.where(e >= s.onset_eV, here - law(k), 0.0)
        out[s.name] = np.maximum(part, 0.0)
    return out


def _lorentzian_smooth(values: np.ndarray, step_eV: float, fwhm_eV: float) -> np.ndarray:
    """Convolution with a Lorentzian of ``fwhm_eV`` on a uniform grid of ``step_eV``."""
    half = fwhm_eV / 2.0
    if half < step_eV / 4:
        return values
    reach = int(min(40.0 * half, 200.0) / step_eV)
    x = np.arange(-reach, reach + 1) * step_eV
    kernel = half / np.pi / (x**2 + half**2)
    kernel /= kernel.sum()
    padded = np.pad(values, reach, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


@cache
def edge_table(n_channels: int = 3072, step_eV: float = 1.0, fine: int = 10) -> np.ndarray:
    """Cross sections of :func:`dataset_edge_sets` on the channels [sets, channels] (cm² per
    atom): channel i is the energy loss i × ``step_eV`` and spans half a step either side;
    each set's photoabsorption broadened by its core-hole width (Lorentzian) and averaged
    over the channel (``fine`` points)."""
    sets = dataset_edge_sets()
    fine_step = step_eV / fine
    e = (np.arange(n_channels * fine) + 0.5) * fine_step - 0.5 * step_eV
    table = np.zeros((len(sets), n_channels))
    by_element: dict[str, dict[str, np.ndarray]] = {}
    for i, s in enumerate(sets):
        if s.symbol not in by_element:
            by_element[s.symbol] = set_cross_sections_cm2(s.symbol, e)
        smooth = _lorentzian_smooth(by_element[s.symbol][s.name], fine_step, s.core_width_eV)
        table[i] = smooth.reshape(n_channels, fine).mean(1)
    return table
