"""Kinematic (single-scattering) approximation of the layer's reflected amplitude.

Dropping the a·Y² term of the Takagi–Taupin Riccati equation (:mod:`.takagi_taupin`), i.e.
neglecting the rescattering of the diffracted wave, leaves dY/dτ = i (2bY + c), which a
slice of reduced thickness τ solves exactly: Y' = Y e^{2ibτ} + (c/2b)(e^{2ibτ} − 1).  From
Y = 0 below a free-standing layer,

    Y_kin = Σ_j (c_j / 2b_j) (e^{2i b_j τ_j} − 1) · Π_{m above j} e^{2i b_m τ_m},

the sum over slices of their scattered amplitudes with the phase (refraction and absorption
included, through χ_0 in b) that the waves pick up in the slices above.  It agrees with the
dynamical result while |Y| ≪ 1 (thin or weakly scattering layers) and is used to check it.
"""

from __future__ import annotations

import math

import torch

from .takagi_taupin import complex_dtype

_SMALL = 1e-4


def _exprel(x: torch.Tensor) -> torch.Tensor:
    """(e^x − 1)/x, stable for x → 0."""
    small = x.abs() < _SMALL
    x_safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1 + x / 2 + x * x / 6, (torch.exp(x_safe) - 1) / x_safe)


def kinematic_amplitude(
    delta_theta_rad: torch.Tensor,
    strain: torch.Tensor,
    dw: torch.Tensor,
    slice_thickness_A: torch.Tensor,
    *,
    bragg_angle_rad: float,
    wavelength_A: float,
    chi_0: complex,
    chi_h: complex,
    polarization_factor: float = 1.0,
) -> torch.Tensor:
    """Kinematic amplitude [B, A] of a free-standing layer (no substrate); arguments as
    :func:`~.takagi_taupin.recursive_amplitude` (strain and dw [B, N], surface first).
    Holds [B, N, A] complex arrays: for checks and small batches."""
    cdtype = complex_dtype(strain.dtype)
    sin_2b = math.sin(2 * bragg_angle_rad)
    tan_b = math.tan(bragg_angle_rad)
    dtheta = delta_theta_rad if delta_theta_rad.ndim == 2 else delta_theta_rad[None, :]
    chi_0 = torch.tensor(chi_0, dtype=cdtype, device=strain.device)
    c_h = -polarization_factor * torch.tensor(chi_h, dtype=cdtype, device=strain.device)
    e = strain[:, :, None]
    b = -(chi_0 + (dtheta[:, None, :] + e * tan_b) * sin_2b)  # [B, N, A]
    tau = (
        math.pi
        * slice_thickness_A[:, None, None]
        / (wavelength_A * torch.sin(bragg_angle_rad - e * tan_b))
    )
    phase = 2j * b * tau
    own = 1j * dw[:, :, None] * c_h * tau * _exprel(phase)  # = (c/2b)(e^{2ibτ} − 1)
    above = torch.cumsum(phase, dim=1) - phase  # Σ over the slices above (surface first)
    return (own * torch.exp(above)).sum(dim=1)
