"""Elastic-scattering kinematics, Rutherford cross sections and screening corrections.

All functions are pure.  Energies in keV, angles in radians, masses in u, cross sections
in mb/sr (1 mb = 1e-27 cm²).  Functions of energy accept floats, numpy arrays or torch
tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .constants import ANDERSEN_V1_KEV, E2_KEV_CM, LECUYER_KEV, MILLIBARN_CM2


def kinematic_factors(m1: float, m2: float, theta: float) -> tuple[float, ...]:
    """Kinematic factors K = E_after/E_before of elastic scattering into lab angle ``theta``.

    K± = [m1/(m1+m2)]² [cos θ ± sqrt((m2/m1)² − sin² θ)]².
    For m2 > m1 only the '+' solution is physical.  For m2 <= m1 scattering is only
    possible up to θ_max = asin(m2/m1); both solutions exist then (the second one, K−, is
    the "RBS−" branch of JaBS).  Returns an empty tuple when no scattering to ``theta``
    is possible (e.g. ⁴He on ²H at 165°).
    """
    s2 = (m2 / m1) ** 2 - math.sin(theta) ** 2
    if s2 < 0.0:
        return ()
    root = math.sqrt(s2)
    pre = (m1 / (m1 + m2)) ** 2
    factors = []
    if math.cos(theta) + root > 0.0:
        factors.append(pre * (math.cos(theta) + root) ** 2)
    if m2 < m1 and math.cos(theta) - root > 0.0:
        factors.append(pre * (math.cos(theta) - root) ** 2)
    return tuple(factors)


def largest_scattering_angle(m1: float, m2: float) -> float:
    """Largest lab angle (radians) into which a projectile of mass ``m1`` is scattered
    elastically by a target of mass ``m2`` (u): π when the target is heavier, else
    asin(m2/m1) (π/2 for equal masses)."""
    return math.pi if m2 > m1 else math.asin(m2 / m1)


def cm_angle(m1: float, m2: float, theta: float, branch: int = 0) -> float:
    """Centre-of-mass scattering angle for lab angle ``theta`` (branch 0: '+', 1: '−')."""
    x = math.asin(min(1.0, (m1 / m2) * math.sin(theta)))
    return theta + x if branch == 0 else math.pi - (x - theta)


def kinematic_slope(channel: RutherfordChannel, step: float = 1e-5) -> float:
    """dK/dθ (per radian) of a channel's kinematic factor at its angle (central differences
    on its branch; one-sided near the largest angle a light target allows)."""
    up = kinematic_factors(channel.m1, channel.m2, channel.theta + step)
    down = kinematic_factors(channel.m1, channel.m2, channel.theta - step)
    b = channel.branch
    if b < len(up) and b < len(down):
        return (up[b] - down[b]) / (2.0 * step)
    if b < len(down):
        return (channel.kinematic_factor - down[b]) / step
    return (up[b] - channel.kinematic_factor) / step if b < len(up) else 0.0


@dataclass(frozen=True)
class RutherfordChannel:
    """Constants of one scattering channel (ion on one target isotope into lab angle θ).

    ``sigma(E)`` in mb/sr is ``rutherford_keV2_mb / E_cm²`` times a screening factor,
    with E_cm = E · m2/(m1+m2).
    """

    z1: int
    z2: int
    m1: float
    m2: float
    theta: float
    branch: int
    kinematic_factor: float
    theta_cm: float
    rutherford_keV2_mb: float

    @classmethod
    def build(cls, z1: int, m1: float, z2: int, m2: float, theta: float, branch: int = 0):
        ks = kinematic_factors(m1, m2, theta)
        if branch >= len(ks):
            raise ValueError(f"no elastic scattering of mass {m1} on {m2} into {theta} rad")
        th_cm = cm_angle(m1, m2, theta, branch)
        # σ_cm(θ_cm) = (Z1 Z2 e² / (4 E_cm))² / sin⁴(θ_cm/2); lab = cm · dΩcm/dΩlab
        jacobian = abs(math.sin(th_cm) ** 2 / (math.sin(theta) ** 2 * math.cos(th_cm - theta)))
        coef_cm2 = (z1 * z2 * E2_KEV_CM / 4.0) ** 2 / math.sin(th_cm / 2.0) ** 4 * jacobian
        return cls(
            z1=z1,
            z2=z2,
            m1=m1,
            m2=m2,
            theta=theta,
            branch=branch,
            kinematic_factor=ks[branch],
            theta_cm=th_cm,
            rutherford_keV2_mb=coef_cm2 / MILLIBARN_CM2,
        )

    @property
    def cm_fraction(self) -> float:
        """E_cm / E_lab = m2 / (m1 + m2)."""
        return self.m2 / (self.m1 + self.m2)


def rutherford(channel: RutherfordChannel, energy_keV):
    """Unscreened Rutherford cross section in the lab frame, mb/sr."""
    e_cm = energy_keV * channel.cm_fraction
    return channel.rutherford_keV2_mb / (e_cm * e_cm)


def andersen_factor(channel: RutherfordChannel, energy_keV):
    """Andersen et al. (1980) screening correction F(E_cm, θ_cm) (dimensionless, < 1).

    F = (1 + V/2)² / (1 + V + (V / (2 sin(θ_cm/2)))²)²,  V = V1/E_cm,
    V1 = 0.04873 keV · Z1 Z2 sqrt(Z1^(2/3) + Z2^(2/3)).
    """
    v1 = (
        ANDERSEN_V1_KEV
        * channel.z1
        * channel.z2
        * math.sqrt(channel.z1 ** (2.0 / 3.0) + channel.z2 ** (2.0 / 3.0))
    )
    v = v1 / (energy_keV * channel.cm_fraction)
    half = 2.0 * math.sin(channel.theta_cm / 2.0)
    den = 1.0 + v + (v / half) ** 2
    return (1.0 + 0.5 * v) ** 2 / (den * den)


def lecuyer_factor(channel: RutherfordChannel, energy_keV):
    """L'Ecuyer et al. (1979) screening correction F = 1 − 0.04873 keV · Z1 Z2^(4/3) / E_cm."""
    return 1.0 - LECUYER_KEV * channel.z1 * channel.z2 ** (4.0 / 3.0) / (
        energy_keV * channel.cm_fraction
    )


SCREENING = {"none": None, "andersen": andersen_factor, "lecuyer": lecuyer_factor}


def cross_section(channel: RutherfordChannel, energy_keV, screening: str = "andersen"):
    """Lab-frame cross section (mb/sr) with the named screening correction."""
    sigma = rutherford(channel, energy_keV)
    factor = SCREENING[screening]
    return sigma if factor is None else sigma * factor(channel, energy_keV)


def exit_angle(incidence: float, scattering: float, geometry: str, azimuth: float = 0.0) -> float:
    """Exit angle β (from the surface normal) of the detected particle, radians.

    The beam enters at ``incidence`` α from the normal and the detector sits at lab
    scattering angle θ.  ``geometry``:

    * ``"IBM"``: beam, detector and normal in one plane, detector on the other side of the
      normal: β = |180° − θ − α|;
    * ``"Cornell"``: detector plane perpendicular to the tilt plane: cos β = −cos θ cos α;
    * ``"general"``: detector at azimuth φ around the beam (φ = 0 is IBM):
      cos β = −cos θ cos α + sin θ sin α cos φ.
    """
    if geometry == "IBM":
        cos_beta = -math.cos(scattering + incidence)
    elif geometry == "Cornell":
        cos_beta = -math.cos(scattering) * math.cos(incidence)
    elif geometry == "general":
        cos_beta = -math.cos(scattering) * math.cos(incidence) + math.sin(scattering) * math.sin(
            incidence
        ) * math.cos(azimuth)
    else:
        raise ValueError(f"geometry: expected IBM, Cornell or general, got {geometry!r}")
    return math.acos(max(-1.0, min(1.0, cos_beta)))
