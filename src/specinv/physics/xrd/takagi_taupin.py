"""Recursive solution of the Takagi–Taupin equations for a symmetric Bragg reflection.

A stack of N laterally homogeneous slices (surface first, see :mod:`.profiles`) lies on a
perfect, semi-infinite substrate.  Within slice j the lattice is strained by e_j along the
surface normal, which shifts its Bragg angle to θ_B,j = θ_B − e_j tan θ_B, and random
displacements lower its structure factor by the Debye–Waller factor DW_j (χ_h → DW_j χ_h).
Bartels, Hornstra & Lobeek (Acta Cryst. A42 (1986) 539) solve the Takagi–Taupin equations in
closed form inside each slice; chaining the slices from the substrate to the surface gives
the reflected amplitude.  This module writes that solution in a form that needs no choice of
square-root branch inside the layer and cannot overflow.

Equations (symmetric Bragg case, γ_0 = −γ_h = sin θ_B,j; χ with Im χ < 0 for absorption, see
:mod:`.crystal`).  With Y = D_h/D_0 the ratio of diffracted to incident amplitude and
τ = π ζ / (λ sin θ_B,j) the reduced height ζ above the bottom of the slice, the
Takagi–Taupin equations reduce to the Riccati equation

    dY/dτ = i (a Y² + 2 b Y + c),
    a = −C DW χ_h̄,   c = −C DW χ_h,   b = −(χ_0 + (θ − θ_B,j) sin 2θ_B),

(C = 1 for σ, |cos 2θ_B| for π polarisation).  It is linear in (p, r) with Y = p/r:
d(p, r)/dτ = i M (p, r), M = [[b, c], [−a, −b]], M² = q² with q² = b² − ac, so across a slice
of reduced thickness τ

    Y' = (Y + i T (b Y + c)) / (1 − i T (a Y + b)),   T = tan(qτ)/q.

T is an even function of q (no branch choice) and bounded for complex arguments (tan → ±i),
so thick slices do not overflow.  For F_h = F_h̄ this is Bartels' recursion: there
a = c = C DW √(χ_h χ_h̄) (the root with Re > 0, i.e. −C DW χ_h), b = −η a, and Bartels'
reduced thickness is T = a τ.

The semi-infinite substrate contributes the wave field that decays into the crystal: the
eigen-solution of M whose eigenvalue q has Im q < 0, Y_sub = −c/(b − q).

Reflectivity: R = |Y|² (|γ_h/γ_0| = 1 in the symmetric case).

Conventions taken from RaDMaX (Souilah et al. 2016, file Def_XRD4Radmax.py): the deviation
uses sin 2θ_B of the unstrained crystal in every slice, τ uses sin θ_B,j, χ_0 is not changed
by strain or disorder, and the slice thickness is the nominal t/N.
"""

from __future__ import annotations

import math

import torch


def complex_dtype(real_dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64, complex64 for float32."""
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64


def slice_factor(q_squared: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """tan(qτ)/q for q = √(q²) (either root gives the same value).

    For small qτ, tan(qτ)/q → τ without cancellation, so no series is needed; the smallest
    normal number added to q² only keeps q = 0 (0/0, and an infinite derivative of √) away
    and changes no value by more than ~1e-290 (float64) or ~1e-30 (float32) relatively."""
    tiny = torch.finfo(tau.dtype).tiny
    q = torch.sqrt(q_squared + tiny)
    return torch.tan(q * tau) / q


def substrate_amplitude(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Y of a semi-infinite perfect crystal: −c/(b ∓ q), q = √(b² − ac).

    The physical root is the wave field that decays with depth (Im q < 0 for −c/(b − q));
    it is also the root of smaller |Y| (R <= 1).  The two criteria agree for an absorbing
    crystal, but without absorption Im q is 0 (up to rounding) outside the total-reflection
    range, so the smaller |Y| decides there and Im q only breaks the tie inside it (where
    both roots have |Y| = 1 without absorption)."""
    q = torch.sqrt(b * b - a * c)
    q = torch.where(q.imag > 0, -q, q)
    decaying, other = b - q, b + q
    other_is_smaller = other.abs() > decaying.abs() * (1 + 1e-9)
    return -c / torch.where(other_is_smaller, other, decaying)


def propagate_slice(
    y: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, tau: torch.Tensor
) -> torch.Tensor:
    """Y at the top of a slice of reduced thickness τ given Y at its bottom."""
    t = slice_factor(b * b - a * c, tau)
    it = 1j * t
    return (y + it * (b * y + c)) / (1 - it * (a * y + b))


def recursive_amplitude(
    delta_theta_rad: torch.Tensor,
    strain: torch.Tensor,
    dw: torch.Tensor,
    slice_thickness_A: torch.Tensor,
    *,
    bragg_angle_rad: float,
    wavelength_A: float,
    chi_0: complex,
    chi_h: complex,
    chi_hbar: complex,
    polarization_factor: float = 1.0,
    substrate: bool = True,
) -> torch.Tensor:
    """Reflected amplitude ratio Y = D_h/D_0 at the surface, [B, A] complex.

    Args:
        delta_theta_rad: [A] or [B, A], θ − θ_B of the unstrained crystal (radians).
        strain: [B, N] strain e_j of each slice (dimensionless), surface first.
        dw: [B, N] Debye–Waller factor of each slice, surface first.
        slice_thickness_A: [B] thickness of every slice (Å).
        bragg_angle_rad, wavelength_A, chi_0, chi_h, chi_hbar: the reflection
            (:class:`~.crystal.Reflection`).
        polarization_factor: C (1 for σ, |cos 2θ_B| for π).
        substrate: start from the semi-infinite perfect substrate (True) or from Y = 0 (a
            free-standing layer).
    """
    if strain.ndim != 2 or dw.shape != strain.shape:
        raise ValueError(
            f"strain, dw: expected equal shapes [B, N], got {list(strain.shape)} and "
            f"{list(dw.shape)}"
        )
    n_batch, n_slices = strain.shape
    if slice_thickness_A.shape != (n_batch,):
        raise ValueError(
            f"slice_thickness_A: expected shape [{n_batch}], got {list(slice_thickness_A.shape)}"
        )
    cdtype = complex_dtype(strain.dtype)
    sin_2b = math.sin(2 * bragg_angle_rad)
    tan_b = math.tan(bragg_angle_rad)
    dtheta = delta_theta_rad if delta_theta_rad.ndim == 2 else delta_theta_rad[None, :]
    chi_0 = torch.tensor(chi_0, dtype=cdtype, device=strain.device)
    c_h = -polarization_factor * torch.tensor(chi_h, dtype=cdtype, device=strain.device)
    c_hbar = -polarization_factor * torch.tensor(chi_hbar, dtype=cdtype, device=strain.device)

    b_unstrained = -(chi_0 + dtheta * sin_2b)  # [1 or B, A]
    if substrate:
        y = substrate_amplitude(c_hbar, b_unstrained, c_h).expand(n_batch, -1)
    else:
        y = torch.zeros(n_batch, dtheta.shape[-1], dtype=cdtype, device=strain.device)
    for j in range(n_slices - 1, -1, -1):  # from the interface up to the surface
        e = strain[:, j : j + 1]
        g = dw[:, j : j + 1]
        b = b_unstrained - e * (tan_b * sin_2b)
        sin_bj = torch.sin(bragg_angle_rad - e * tan_b)
        tau = math.pi * slice_thickness_A[:, None] / (wavelength_A * sin_bj)
        y = propagate_slice(y, g * c_hbar, b, g * c_h, tau)
    return y
