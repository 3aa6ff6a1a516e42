"""Model-based quantification of identified elements in a core-loss spectrum.

The spectrum over its non-zero range is modelled (Verbeeck & Van Aert, Ultramicroscopy 101,
2004; with the fine structure of Verbeeck, Van Aert & Bertoni, Ultramicroscopy 106, 2006) as

    I(E) = A E^−r + Σ_el n_el X_el(E) + Σ_sets Σ_k c_{set,k} h_k(E),

* X_el: the element's energy-loss cross section, the sum of its edge sets in range
  (photoabsorption of :func:`~specinv.physics.eels.edges.edge_table` through the dipole
  conversion of :mod:`~specinv.physics.eels.scattering` for the beam energy and the angles;
  convolved with the low-loss spectrum where it is known);
* h_k: triangular functions from just below each set's onset to ``elnes_window_eV`` above
  it, 1 eV apart over the first 30 eV (white lines), ``elnes_spacing_eV`` beyond, with free
  signs: the near-edge fine structure, which no atomic cross section has, is fitted, not
  attributed to the amount;
* the power-law background A E^−r.

For a given exponent r the model is linear: non-negative least squares of A, the amounts
n_el and the fine-structure weights (free), each channel weighted by 1/√max(counts, 1)
(Poisson); r is found by a bounded scalar minimisation of that χ² (variable projection).
The relative concentrations are n_el / Σ n (atoms).  Chemical shifts are not modelled: the
fine-structure functions take up a few eV of misplaced onset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import lsq_linear, minimize_scalar

from ...physics.eels.edges import dataset_edge_sets, edge_table
from ...physics.eels.lowloss import plural_scattering
from ...physics.eels.scattering import dipole_cross_section

#: exponents of the background power law searched
EXPONENT_RANGE = (1.0, 6.0)
#: the fine-structure functions are 1 eV apart this far above an onset (white lines), then
#: ``elnes_spacing_eV``
_NEAR_EDGE_EV = 30.0


@dataclass(frozen=True)
class Quantification:
    """The result of :func:`quantify`.

    Attributes:
        elements: the quantified elements.
        amounts: n_el, in the units of the cross sections (arbitrary but common).
        concentrations: n_el / Σ n (atomic fractions of the quantified elements).
        background: (A, r) of the power law A E^−r.
        chi2_reduced: the Poisson-weighted χ² per degree of freedom of the fit.
        model: the fitted spectrum on the channels (0 outside the fitted range).
        shifts_eV: the onset shift fitted for every element (eV).
    """

    elements: tuple[str, ...]
    amounts: np.ndarray
    concentrations: np.ndarray
    background: tuple[float, float]
    chi2_reduced: float
    model: np.ndarray
    shifts_eV: np.ndarray


def _hats(energy: np.ndarray, centres: np.ndarray, half_widths: np.ndarray) -> np.ndarray:
    """Triangular functions [channels, len(centres)] of the given half-widths."""
    z = np.abs(energy[:, None] - centres[None, :]) / half_widths[None, :]
    return np.clip(1.0 - z, 0.0, None)


def element_cross_sections(
    elements: Sequence[str],
    energy_eV: np.ndarray,
    beam_energy_kV: float,
    convergence_mrad: float,
    collection_mrad: float,
    low_loss: Mapping[str, float] | None = None,
    visible_eV: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[np.ndarray, dict[str, list[float]]]:
    """X_el [channels, elements] of every element's edge sets with an onset in
    ``visible_eV`` (cm²/eV per atom, dipole approximation; convolved with the low-loss
    spectrum of ``low_loss``: ``zlp_fwhm_eV``, ``plasmon_eV``, ``plasmon_fwhm_eV``,
    ``n_plasmons``, ``thickness_over_mfp``), and the onsets of those sets by element."""
    n = energy_eV.size
    table = edge_table(n)
    photo = np.zeros((len(elements), n))
    onsets: dict[str, list[float]] = {el: [] for el in elements}
    for i, s in enumerate(dataset_edge_sets()):
        if s.symbol in elements and visible_eV[0] <= s.onset_eV <= visible_eV[1]:
            photo[list(elements).index(s.symbol)] += table[i]
            onsets[s.symbol].append(s.onset_eV)
    t = torch.as_tensor
    x = dipole_cross_section(
        t(photo),
        t(np.maximum(energy_eV, 1.0))[None, :],
        t(beam_energy_kV * 1e3),
        t(convergence_mrad * 1e-3),
        t(collection_mrad * 1e-3),
    )
    if low_loss is not None:
        k = len(elements)
        x = plural_scattering(
            x,
            float(energy_eV[1] - energy_eV[0]),
            *(
                t(np.full(k, float(low_loss[name])))
                for name in (
                    "zlp_fwhm_eV",
                    "plasmon_eV",
                    "plasmon_fwhm_eV",
                    "n_plasmons",
                    "thickness_over_mfp",
                )
            ),
        )
    return x.numpy().T, onsets


def elements_with_edges(
    elements: Sequence[str], counts: np.ndarray, beam_energy_kV: float = 200.0
) -> list[str]:
    """Those of ``elements`` with a non-zero cross section in the recorded (non-zero) range
    of ``counts`` [C] on 0 … C−1 eV: the ones :func:`quantify` can fit."""
    counts = np.asarray(counts, dtype=float)
    recorded = np.flatnonzero(counts > 0)
    if recorded.size == 0:
        return []
    lo, hi = recorded[0], recorded[-1]
    x, _ = element_cross_sections(
        tuple(elements),
        np.arange(counts.size, dtype=float),
        beam_energy_kV,
        10.0,
        20.0,
        visible_eV=(lo, hi),
    )
    return [el for i, el in enumerate(elements) if np.any(x[lo : hi + 1, i] > 0)]


def quantify(
    counts: np.ndarray,
    elements: Sequence[str],
    *,
    beam_energy_kV: float,
    convergence_mrad: float,
    collection_mrad: float,
    low_loss: Mapping[str, float] | None = None,
    elnes_window_eV: float = 120.0,
    elnes_spacing_eV: float = 5.0,
    max_shift_eV: int = 10,
) -> Quantification:
    """Amounts and atomic fractions of ``elements`` in a spectrum of ``counts`` [C] on the
    channels 0 … C−1 eV, zero outside its recorded range (module docstring).

    Raises:
        ValueError: naming the element without an edge in the recorded range, or a spectrum
            without counts.
    """
    counts = np.asarray(counts, dtype=float)
    energy = np.arange(counts.size, dtype=float)
    recorded = np.flatnonzero(counts > 0)
    if recorded.size < 10:
        raise ValueError(f"counts: expected a spectrum with counts, got {recorded.size} channels")
    lo, hi = recorded[0], recorded[-1]
    elements = tuple(elements)
    x, onsets = element_cross_sections(
        elements,
        energy,
        beam_energy_kV,
        convergence_mrad,
        collection_mrad,
        low_loss,
        visible_eV=(lo, hi),
    )
    window = slice(lo, hi + 1)
    missing = [el for i, el in enumerate(elements) if not np.any(x[window, i] > 0)]
    if missing:
        raise ValueError(
            f"elements: {', '.join(missing)} have no edge in the spectrum's range {lo}-{hi} eV"
        )
    e, y = energy[window], counts[window]
    weight = 1.0 / np.sqrt(np.maximum(y, 1.0))
    # every column scaled to the spectrum's maximum for the solver: background, elements,
    # fine structure
    top = y.max()
    n_el = len(elements)
    shifts = np.zeros(n_el, dtype=int)

    def columns(shift: np.ndarray):
        moved = np.column_stack([np.roll(x[:, i], shift[i]) for i in range(n_el)])[window]
        centres, widths = [], []
        for i, el in enumerate(elements):
            for o in onsets[el]:
                o = o + shift[i]
                # fine near the onset (white lines are a few eV wide), coarser beyond
                near = np.arange(o - 2.0, o + _NEAR_EDGE_EV, 1.0)
                far = np.arange(o + _NEAR_EDGE_EV, o + elnes_window_eV + 1e-9, elnes_spacing_eV)
                centres += [near, far]
                widths += [np.ones(near.size), np.full(far.size, elnes_spacing_eV)]
        centres, widths = np.concatenate(centres), np.concatenate(widths)
        return moved, _hats(e, centres, widths)

    def solve(r: float, shift: np.ndarray):
        moved, hats = columns(shift)
        scale_x = np.maximum(np.abs(moved).max(0), 1e-300) / top
        design = np.column_stack([top * (e / e[0]) ** -r, moved / scale_x, hats * top])
        lower = np.r_[0.0, np.zeros(n_el), np.full(hats.shape[1], -np.inf)]
        fit = lsq_linear(design * weight[:, None], y * weight, bounds=(lower, np.inf))
        return fit, design, scale_x

    def best_exponent(shift: np.ndarray) -> float:
        return minimize_scalar(
            lambda r: float(2.0 * solve(r, shift)[0].cost),
            bounds=EXPONENT_RANGE,
            method="bounded",
            options={"xatol": 1e-4},
        ).x

    # onsets move with chemical and instrumental shifts: a whole-eV shift per element,
    # by coordinate descent over ± max_shift_eV at the best exponent
    r = best_exponent(shifts)
    for _ in range(2 if max_shift_eV else 0):
        for i in range(n_el):
            trial = []
            for s in range(-max_shift_eV, max_shift_eV + 1):
                candidate = shifts.copy()
                candidate[i] = s
                trial.append((solve(r, candidate)[0].cost, s))
            shifts[i] = min(trial)[1]
        r = best_exponent(shifts)
    fit, design, scale_x = solve(r, shifts)
    amounts = fit.x[1 : 1 + n_el] / scale_x
    model = np.zeros_like(counts)
    model[window] = design @ fit.x
    dof = max(y.size - design.shape[1] - 1 - n_el, 1)
    total = amounts.sum()
    return Quantification(
        elements=elements,
        amounts=amounts,
        concentrations=amounts / total if total > 0 else np.full(n_el, np.nan),
        background=(float(fit.x[0] * top * e[0] ** r), float(r)),
        shifts_eV=shifts,
        chi2_reduced=float(2.0 * fit.cost / dof),
        model=model,
    )
