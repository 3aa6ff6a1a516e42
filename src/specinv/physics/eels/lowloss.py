"""A generic low-loss spectrum and plural scattering by convolution with it.

The low-loss spectrum of a sample of thickness t (in units of the plasmon mean free path
λ) is a zero-loss peak (Gaussian, the instrument's resolution) followed by the n-fold
plasmon peaks at n E_p (Lorentzians whose widths add, n Γ_p; zero at negative losses),
weighted by the Poisson probabilities P_n = (t/λ)^n e^{−t/λ} / n! (Egerton 2011, §3.7).
Normalised to unit area, it is the kernel that turns single-scattering core-loss edges into
what a spectrometer records (the Fourier-log relation run forwards).

Torch functions of batches: parameters [B], energies in eV, spectra [B, channels] on a
grid of ``step_eV`` starting at 0.
"""

from __future__ import annotations

import math

import torch


def low_loss_kernel(
    n_channels: int,
    step_eV: float,
    zlp_fwhm_eV: torch.Tensor,
    plasmon_eV: torch.Tensor,
    plasmon_fwhm_eV: torch.Tensor,
    n_plasmons: torch.Tensor,
    thickness_over_mfp: torch.Tensor,
) -> torch.Tensor:
    """Low-loss spectra [B, n_channels] of unit area on a circular grid: channel k is the
    energy k × step for k < n/2 and (k − n) × step above (the zero-loss peak's negative
    side wraps to the end), ready for a circular convolution."""
    k = torch.arange(n_channels, dtype=zlp_fwhm_eV.dtype, device=zlp_fwhm_eV.device)
    e = torch.where(k < n_channels / 2, k, k - n_channels) * step_eV
    sigma = zlp_fwhm_eV[:, None] / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    zlp = torch.exp(-0.5 * (e / sigma) ** 2)
    zlp = zlp / zlp.sum(-1, keepdim=True)
    tl = thickness_over_mfp[:, None]
    spectrum = torch.exp(-tl) * zlp
    n_max = int(n_plasmons.max().item()) if n_plasmons.numel() else 0
    for n in range(1, n_max + 1):
        half = n * plasmon_fwhm_eV[:, None] / 2.0
        peak = torch.where(e > 0, half / ((e - n * plasmon_eV[:, None]) ** 2 + half**2), 0.0)
        peak = peak / peak.sum(-1, keepdim=True)
        weight = torch.exp(-tl) * tl**n / math.factorial(n)
        spectrum = spectrum + torch.where(n <= n_plasmons[:, None], weight, 0.0) * peak
    return spectrum / spectrum.sum(-1, keepdim=True)


def plural_scattering(
    single: torch.Tensor,
    step_eV: float,
    zlp_fwhm_eV: torch.Tensor,
    plasmon_eV: torch.Tensor,
    plasmon_fwhm_eV: torch.Tensor,
    n_plasmons: torch.Tensor,
    thickness_over_mfp: torch.Tensor,
) -> torch.Tensor:
    """Single-scattering spectra [B, C] convolved with their low-loss spectra (linear
    convolution by FFT on a grid padded to twice the length; counts conserved apart from
    what leaves the end of the grid)."""
    c = single.shape[-1]
    n = 1 << (2 * c - 1).bit_length()
    kernel = low_loss_kernel(
        n, step_eV, zlp_fwhm_eV, plasmon_eV, plasmon_fwhm_eV, n_plasmons, thickness_over_mfp
    )
    out = torch.fft.irfft(torch.fft.rfft(single, n) * torch.fft.rfft(kernel, n), n)
    return out[..., :c]
