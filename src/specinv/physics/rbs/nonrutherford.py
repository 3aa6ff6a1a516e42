"""Where Rutherford cross sections stop holding: an estimate of the beam energy at which
elastic scattering of a light ion from a light nucleus starts to deviate from Rutherford's
(the ion comes close enough for nuclear forces).

The estimate is a fixed share of the Coulomb barrier in the laboratory frame,

    E_NR ≈ 0.48 · V_C · (m1 + m2) / m2,   V_C = e²/(4πε0) · Z1 Z2 / R,
    R = 1.44 fm · (A1^(1/3) + A2^(1/3)),

with the share 0.48 the smallest ratio of a measured onset to that barrier among six 4He
backscattering measurements at 165–170° by Cheng et al. (O: Acta Phys. Sin. (Overseas Ed.)
2 (1993) 641, 2.35 MeV; F 2.60, Mg 3.20, Al 3.60, Si 3.80, Cl 4.50 MeV: Nucl. Instrum.
Methods B (1994), doi:10.1016/0168-583X(94)95783-5; ratios 0.48–0.58), so that for 4He
from O to Cl it errs on the low side.
For lighter or heavier targets and for other helium isotopes it is an extrapolation, and
it is not offered for other ions (protons' onsets are not a fixed share of the barrier).
It tells where a simulation with Rutherford cross sections (this package's) is no longer
right, not what the cross section is there.
"""

from __future__ import annotations

from .isotopes import ion as ion_isotope
from .isotopes import species

#: e²/(4πε0) in MeV·fm
COULOMB_MEV_FM = 1.439964
#: radius parameter of the barrier (fm)
BARRIER_RADIUS_FM = 1.44
#: measured onset / laboratory Coulomb barrier, the smallest of the six 4He measurements
ONSET_SHARE = 0.48


def coulomb_barrier_lab_keV(ion: str, element: str) -> float:
    """The Coulomb barrier of ``ion`` on the main isotope of ``element`` as a laboratory
    beam energy (keV)."""
    projectile = ion_isotope(ion)
    target = max(species(element).isotopes, key=lambda i: i.abundance)
    radius = BARRIER_RADIUS_FM * (projectile.A ** (1 / 3) + target.A ** (1 / 3))
    barrier_cm = COULOMB_MEV_FM * projectile.Z * target.Z / radius
    return 1000.0 * barrier_cm * (projectile.mass_u + target.mass_u) / target.mass_u


def non_rutherford_onset_keV(ion: str, element: str) -> float | None:
    """Estimated beam energy (keV) above which ``ion`` scatters from ``element``
    measurably unlike Rutherford (module docstring); None for ions other than helium."""
    if ion_isotope(ion).Z != 2:
        return None
    return ONSET_SHARE * coulomb_barrier_lab_keV(ion, element)
