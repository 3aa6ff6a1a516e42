"""Generic near-edge fine structure (Annys, Jannis & Verbeeck 2023, Methods).

Tabulated atomic cross sections have no solid-state fine structure; a generic one stands in
for it: a sum of Gaussian peaks at random energies within a window above the onset, with
random weights, each as wide as the lifetime of the ejected electron allows.  An electron
ε above the onset moves at v = √(2ε/m) and lives τ ≈ λ_i / v, λ_i its inelastic mean free
path; the peak's width is Γ ≈ ħ/τ.  λ_i follows Seah & Dench (Surf. Interface Anal. 1, 1979)
for elemental solids, λ_i = 538 a ε⁻² + 0.41 a^{3/2} ε^{1/2} (nm, ε in eV, a the atomic
diameter in nm).

White lines (transitions into empty d or f states at the L3/L2 edges of the transition
metals and the M5/M4 edges of the lanthanides) are two further peaks at the spin-orbit
onsets, as wide as the core hole allows (at least the channel width).

NumPy functions; energies in eV.
"""

from __future__ import annotations

import numpy as np

#: ħ (eV s)
HBAR_EV_S = 6.582119569e-16
#: √(2 e / m_e): speed (m/s) of an electron of 1 eV kinetic energy
_SPEED_1EV = 5.930969e5
#: narrowest peak (eV): below the channel width a Gaussian is not sampled
MIN_WIDTH_EV = 1.0


def inelastic_mean_free_path_nm(energy_eV: np.ndarray, atomic_diameter_nm: float) -> np.ndarray:
    """Seah–Dench λ_i (nm) of electrons ``energy_eV`` above the onset in an elemental
    solid of atomic diameter ``atomic_diameter_nm``."""
    e = np.maximum(np.asarray(energy_eV, dtype=float), 1e-3)
    a = atomic_diameter_nm
    return 538.0 * a / e**2 + 0.41 * a**1.5 * np.sqrt(e)


def lifetime_width_eV(energy_eV: np.ndarray, atomic_diameter_nm: float) -> np.ndarray:
    """Γ = ħ v / λ_i (eV) of an electron ``energy_eV`` above the onset."""
    e = np.maximum(np.asarray(energy_eV, dtype=float), 1e-3)
    speed = _SPEED_1EV * np.sqrt(e)
    return HBAR_EV_S * speed / (inelastic_mean_free_path_nm(e, atomic_diameter_nm) * 1e-9)


def gaussian_peaks(
    energy_eV: np.ndarray, centres_eV: np.ndarray, fwhm_eV: np.ndarray, heights: np.ndarray
) -> np.ndarray:
    """Σ heights · exp(−4 ln2 (E − centre)²/FWHM²) on ``energy_eV``."""
    z = (energy_eV[:, None] - centres_eV[None, :]) / fwhm_eV[None, :]
    return (heights[None, :] * np.exp(-4.0 * np.log(2.0) * z**2)).sum(1)


def fine_structure(
    energy_eV: np.ndarray,
    onset_eV: float,
    rng: np.random.Generator,
    *,
    window_eV: float,
    degree: int,
    atomic_diameter_nm: float,
) -> np.ndarray:
    """A generic fine structure on ``energy_eV``, peak height 1: ``degree`` Gaussians at
    uniform random energies in [onset, onset + window], uniform random weights, widths
    :func:`lifetime_width_eV` (at least :data:`MIN_WIDTH_EV`)."""
    centres = onset_eV + rng.uniform(0.0, window_eV, degree)
    widths = np.maximum(lifetime_width_eV(centres - onset_eV, atomic_diameter_nm), MIN_WIDTH_EV)
    shape = gaussian_peaks(energy_eV, centres, widths, rng.uniform(0.0, 1.0, degree))
    top = shape.max()
    return shape / top if top > 0 else shape


def white_lines(
    energy_eV: np.ndarray,
    onsets_eV: np.ndarray,
    width_eV: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Two white lines at ``onsets_eV`` (first the larger: L3 or M5), height 1 and a random
    ratio r ∈ [1, 3] of the first to the second (the statistical 2:1 and its spread)."""
    ratio = rng.uniform(1.0, 3.0)
    heights = np.array([1.0, 1.0 / ratio])[: len(onsets_eV)]
    widths = np.full(len(heights), max(width_eV, MIN_WIDTH_EV))
    return gaussian_peaks(energy_eV, np.asarray(onsets_eV, dtype=float), widths, heights)
