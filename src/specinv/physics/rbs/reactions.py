"""Scattering channels of a layered sample: one per isotope (and kinematic branch), with
isotopes of nearly equal mass optionally merged.

Every isotope scatters with its own kinematic factor K_i.  For heavy elements the K_i are so
close that the isotopes' spectra are copies shifted by far less than the detector
resolution (tungsten at 3 MeV: 2 keV standard deviation against a 15 keV FWHM detector).
Such isotopes can be simulated as one channel with the cross-section-weighted mean K and
the weighted variance of K: at a depth where the beam energy is E and the gain to the
detector is dE_det/dE_start = g, the isotopes' detected energies have mean K̄·E·g (to
first order) and variance var(K)·(E·g)², which is added to the Gaussian broadening.  The
neglected higher cumulants change the spectrum by less than (std/σ)⁴/10 of an edge height,
i.e. < 1e-3 at the default threshold (std ≤ 0.35 σ_detector at the beam energy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .isotopes import Isotope, Species
from .kinematics import RutherfordChannel, kinematic_factors


@dataclass(frozen=True)
class Reaction:
    """A scattering channel of one layer.

    Attributes:
        layer: layer index (0 = surface).
        parameter: index of the element in the parameter vector.
        label: isotope(s) it stands for, e.g. ``"182W"`` or ``"W(180,182,183,184,186)"``.
        abundance: fraction of the element's atoms it represents.
        kinematic_factor: (cross-section weighted mean) kinematic factor.
        kinematic_variance: weighted variance of K over merged isotopes (0 for one isotope).
        rutherford_lab_keV2_mb: σ_Rutherford(E) = this / E_lab² (mb/sr, E in keV), the
            abundance-weighted mean of the merged isotopes.
        channel: the most abundant isotope's channel (used for the screening correction).
    """

    layer: int
    parameter: int
    label: str
    abundance: float
    kinematic_factor: float
    kinematic_variance: float
    rutherford_lab_keV2_mb: float
    channel: RutherfordChannel


def _lab_coefficient(ch: RutherfordChannel) -> float:
    return ch.rutherford_keV2_mb / ch.cm_fraction**2


def _merge(
    layer: int, parameter: int, element: str, members: Sequence[tuple[Isotope, RutherfordChannel]]
) -> Reaction:
    weights = [iso.abundance * _lab_coefficient(ch) for iso, ch in members]
    ks = [ch.kinematic_factor for _, ch in members]
    total_w = sum(weights)
    k_mean = sum(w * k for w, k in zip(weights, ks, strict=True)) / total_w
    k_var = sum(w * (k - k_mean) ** 2 for w, k in zip(weights, ks, strict=True)) / total_w
    abundance = sum(iso.abundance for iso, _ in members)
    coef = sum(iso.abundance * _lab_coefficient(ch) for iso, ch in members) / abundance
    main = max(members, key=lambda m: m[0].abundance)
    branch = "" if main[1].branch == 0 else " (K-)"
    if len(members) == 1:
        label = main[0].label + branch
    else:
        label = f"{element}({','.join(str(iso.A) for iso, _ in members)}){branch}"
    return Reaction(
        layer=layer,
        parameter=parameter,
        label=label,
        abundance=abundance,
        kinematic_factor=k_mean,
        kinematic_variance=k_var,
        rutherford_lab_keV2_mb=coef,
        channel=main[1],
    )


def layer_reactions(
    layer: int,
    parameter: int,
    element: Species,
    z1: int,
    m1: float,
    theta: float,
    max_k_std: float = 0.0,
) -> list[Reaction]:
    """Scattering channels of ``element`` in ``layer`` for an ion (z1, m1) into angle θ.

    Isotopes (of one kinematic branch) are merged greedily in order of K while the
    weighted standard deviation of K in a group stays at or below ``max_k_std``
    (0 keeps every isotope separate).  Isotopes that cannot scatter into θ (e.g. ²H under
    ⁴He at backward angles) give no channel.
    """
    by_branch: dict[int, list[tuple[Isotope, RutherfordChannel]]] = {}
    for iso in element.isotopes:
        for branch, _ in enumerate(kinematic_factors(m1, iso.mass_u, theta)):
            ch = RutherfordChannel.build(z1, m1, iso.Z, iso.mass_u, theta, branch)
            by_branch.setdefault(branch, []).append((iso, ch))
    out = []
    for branch in sorted(by_branch):
        members = sorted(by_branch[branch], key=lambda m: m[1].kinematic_factor)
        group: list[tuple[Isotope, RutherfordChannel]] = []
        for m in members:
            trial = group + [m]
            if (
                group
                and math.sqrt(_merge(layer, parameter, element.symbol, trial).kinematic_variance)
                > max_k_std
            ):
                out.append(_merge(layer, parameter, element.symbol, group))
                trial = [m]
            group = trial
        if group:
            out.append(_merge(layer, parameter, element.symbol, group))
    return out
