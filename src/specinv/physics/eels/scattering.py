"""Inelastic scattering of fast electrons in the dipole (optical) approximation.

For an energy loss E well below the beam energy and scattering angles below the Bethe
ridge, the energy-differential cross section for scattering into a collection aperture is
(Egerton, *Electron Energy-Loss Spectroscopy in the Electron Microscope*, 3rd ed., 2011,
§3.2 and §3.6)

    dσ/dE = R σ_ph(E) / (π α_fs E T) · Λ(E),

with σ_ph the photoabsorption cross section (the optical oscillator strength times
4π² α_fs a0² R), R the Rydberg energy, α_fs the fine-structure constant, T = m0 v²/2 of
the incident electron and Λ the angular factor: ln(1 + β²/θ_E²) for a parallel beam and a
collection semi-angle β, θ_E = E/(γ m0 v²) the characteristic angle.

A convergent probe (semi-angle α, uniformly filled) shifts the Lorentzian angular
distribution 1/(θ² + θ_E²) by every incident direction u; its integral over the aperture
disc of radius β about −u has the closed form π ln[(θ_E² + β² − u² + √((θ_E² + β² − u²)² +
4 θ_E² u²)) / (2 θ_E²)], which :func:`angular_factor` averages over the illumination disc
by Gauss–Legendre quadrature.  Angles are capped at the Bethe ridge θ_r = √(E/E0), beyond
which the dipole form no longer holds.

Torch functions of tensors that broadcast; energies in eV, angles in rad.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: electron rest energy (eV)
ELECTRON_REST_EV = 510_998.95
#: Rydberg energy (eV)
RYDBERG_EV = 13.605693
#: fine-structure constant
FINE_STRUCTURE = 7.2973525693e-3
#: Gauss–Legendre order of the average over the illumination disc
_QUADRATURE = 24


def relativistic_kinematics(beam_energy_eV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(γ, T) of electrons of kinetic energy ``beam_energy_eV``: T = m0 v²/2 (eV), the
    energy Bethe's formula uses."""
    gamma = 1.0 + beam_energy_eV / ELECTRON_REST_EV
    beta2 = 1.0 - 1.0 / gamma**2
    return gamma, 0.5 * ELECTRON_REST_EV * beta2


def characteristic_angle(loss_eV: torch.Tensor, beam_energy_eV: torch.Tensor) -> torch.Tensor:
    """θ_E = E/(γ m0 v²) (rad) = E/(2 γ T)."""
    gamma, t = relativistic_kinematics(beam_energy_eV)
    return loss_eV / (2.0 * gamma * t)


def disc_lorentzian(
    theta_e: torch.Tensor, beta: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """(1/π) ∫ d²θ / (θ² + θ_E²) over a disc of radius ``beta`` whose centre lies
    ``offset`` from the Lorentzian's centre (all in rad); ln(1 + β²/θ_E²) at zero offset."""
    a2, b2, u2 = theta_e**2, beta**2, offset**2
    s = a2 + b2 - u2
    return torch.log((s + torch.sqrt(s**2 + 4.0 * a2 * u2)) / (2.0 * a2))


def angular_factor(
    loss_eV: torch.Tensor,
    beam_energy_eV: torch.Tensor,
    convergence_rad: torch.Tensor,
    collection_rad: torch.Tensor,
) -> torch.Tensor:
    """Λ(E): the share of the dipole angular distribution a collection semi-angle β
    gathers from a probe of convergence semi-angle α, in units of the parallel-beam
    ln(1 + β²/θ_E²) (module docstring); both angles capped at the Bethe ridge √(E/E0)."""
    theta_e = characteristic_angle(loss_eV, beam_energy_eV)
    ridge = torch.sqrt(loss_eV / beam_energy_eV)
    beta = torch.minimum(collection_rad, ridge)
    alpha = torch.minimum(convergence_rad, ridge)
    nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE)
    # incident directions uniform over the disc: r² uniform in [0, α²]
    r2 = torch.as_tensor((nodes + 1.0) / 2.0, dtype=loss_eV.dtype, device=loss_eV.device)
    w = torch.as_tensor(weights / 2.0, dtype=loss_eV.dtype, device=loss_eV.device)
    offsets = alpha.unsqueeze(-1) * torch.sqrt(r2)
    values = disc_lorentzian(theta_e.unsqueeze(-1), beta.unsqueeze(-1), offsets)
    return (values * w).sum(-1)


def dipole_cross_section(
    photoabsorption: torch.Tensor,
    loss_eV: torch.Tensor,
    beam_energy_eV: torch.Tensor,
    convergence_rad: torch.Tensor,
    collection_rad: torch.Tensor,
) -> torch.Tensor:
    """dσ/dE (units of ``photoabsorption`` per eV) of the energy losses ``loss_eV`` from
    the photoabsorption cross section at those energies (module docstring)."""
    _, t = relativistic_kinematics(beam_energy_eV)
    lam = angular_factor(loss_eV, beam_energy_eV, convergence_rad, collection_rad)
    return RYDBERG_EV * photoabsorption * lam / (math.pi * FINE_STRUCTURE * loss_eV * t)
