"""Instrument function and intensity scale: convolution with a pseudo-Voigt, scale, background.

The pseudo-Voigt of full width at half maximum H and mixing η (0: Gaussian, 1: Lorentzian),
both components of the same FWHM (as RaDMaX's ``f_pVoigt``):

    pV(x) = η / (1 + (2x/H)²) + (1 − η) exp(−ln 2 (2x/H)²)

is sampled on the (uniform) angle grid, normalised to unit sum and convolved with the coherent
intensity ('same' size; outside the grid the intensity is taken as 0, so compute a margin
beyond the range you keep).  The convolution is done by FFT, batched, with one width per
sample, and is differentiable in the intensity and in H.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Normalization = Literal["max", "none"]
NORMALIZATIONS: tuple[str, ...] = ("max", "none")


def pseudo_voigt(x: torch.Tensor, fwhm: torch.Tensor, eta: float) -> torch.Tensor:
    """pV(x) with unit maximum; ``x`` and ``fwhm`` broadcast (same unit)."""
    u = 2 * x / fwhm
    u2 = u * u
    return eta / (1 + u2) + (1 - eta) * torch.exp(-math.log(2) * u2)


def instrument_kernel(
    n_points: int, fwhm_steps: torch.Tensor, eta: float, *, smallest_fwhm_steps: float = 1e-3
) -> torch.Tensor:
    """pV sampled at offsets −(n−1)..(n−1) grid steps, normalised to unit sum: [B, 2n−1].

    ``fwhm_steps``: [B] FWHM in grid steps; widths below ``smallest_fwhm_steps`` are raised to
    it (the kernel is then a unit impulse)."""
    offsets = torch.arange(
        -(n_points - 1), n_points, dtype=fwhm_steps.dtype, device=fwhm_steps.device
    )
    width = fwhm_steps.clamp_min(smallest_fwhm_steps)[:, None]
    kernel = pseudo_voigt(offsets[None, :], width, eta)
    return kernel / kernel.sum(dim=1, keepdim=True)


def convolve_same(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Linear convolution of each row of ``signal`` [B, A] with its centred kernel [B, 2A−1]
    (or [1, 2A−1]), cut to the A points of the signal."""
    n = signal.shape[-1]
    if kernel.shape[-1] != 2 * n - 1:
        raise ValueError(
            f"kernel: expected {2 * n - 1} points for a signal of {n}, got {kernel.shape[-1]}"
        )
    size = 3 * n - 2
    spectrum = torch.fft.rfft(signal, n=size) * torch.fft.rfft(kernel, n=size)
    full = torch.fft.irfft(spectrum, n=size)
    return full[..., n - 1 : 2 * n - 1]


def scale_and_background(
    intensity: torch.Tensor,
    scale: torch.Tensor,
    background: torch.Tensor,
    normalization: Normalization = "max",
) -> torch.Tensor:
    """``scale · I / max(I) + background`` ("max", as RaDMaX and Boulle & Debelle 2023) or
    ``scale · I + background`` ("none": I stays an absolute reflectivity); [B, A]."""
    if normalization == "max":
        intensity = intensity / intensity.amax(dim=1, keepdim=True)
    elif normalization != "none":
        raise ValueError(f"normalization: expected one of {NORMALIZATIONS}, got {normalization!r}")
    return scale[:, None] * intensity + background[:, None]
