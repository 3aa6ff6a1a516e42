"""What the detector electronics add to a spectrum: pulse pile-up and a background.

Pile-up (the "fast" first-order model, as SIMNRA's): two particles that arrive within the
amplifier's resolving time are recorded as one, at the sum of their energies.  With p the
probability that a detected particle piles up with another, the spectrum s (N counts)
becomes

    s' = (1 − 2p) s + p (s ∗ s) / N,

each piled pair removing two counts at their energies and adding one at the sum; s ∗ s is
the self-convolution on the energy axis (for E = offset + gain·χ, channels i and j add up
at channel i + j + 1/2 + offset/gain, interpolated linearly, so the result is smooth in the
calibration).  Valid while p ≪ 1 (triple pile-up is left out).

Background: a flat level b₀ (counts per channel) and a low-energy term b₁ (E_cut/E)²
(counts per channel, b₁ at the cut-off energy), on the channels above the cut-off.
"""

from __future__ import annotations

import torch


def pileup(
    counts: torch.Tensor, probability: torch.Tensor, offset_keV: torch.Tensor, gain: torch.Tensor
) -> torch.Tensor:
    """The spectra ``counts`` [B, C] with first-order pile-up of probability [B] (a linear
    calibration offset [B] + gain [B]·χ); differentiable in every argument."""
    batch, c = counts.shape
    total = counts.sum(-1, keepdim=True)
    spectrum = torch.fft.rfft(counts, n=2 * c)
    pairs = torch.fft.irfft(spectrum * spectrum, n=2 * c)  # [B, 2C]: index i + j
    # channel k receives the pairs at i + j = k − 1/2 − offset/gain
    position = torch.arange(c, dtype=counts.dtype, device=counts.device) - 0.5
    position = position - (offset_keV / gain)[:, None]
    base = position.detach().floor()
    t = position - base
    low = base.long()
    inside_low = (low >= 0) & (low < 2 * c)
    inside_high = (low + 1 >= 0) & (low + 1 < 2 * c)
    take = lambda i: pairs.gather(1, i.clamp(0, 2 * c - 1))  # noqa: E731
    piled = (
        torch.where(inside_low, take(low), 0.0) * (1.0 - t)
        + torch.where(inside_high, take(low + 1), 0.0) * t
    )
    share = probability[:, None] / torch.where(total > 0, total, 1.0)
    return counts * (1.0 - 2.0 * probability[:, None]) + share * piled.clamp(min=0.0)


def background(
    energy_keV: torch.Tensor, cutoff_keV: float, flat: torch.Tensor, low: torch.Tensor
) -> torch.Tensor:
    """Background counts [B, C] at channel-centre energies ``energy_keV`` [B, C]: ``flat``
    [B] plus ``low`` [B] × (E_cut/E)², zero at and below the cut-off."""
    above = energy_keV > cutoff_keV
    ratio = cutoff_keV / torch.where(above, energy_keV, cutoff_keV)
    return torch.where(above, flat[:, None] + low[:, None] * ratio * ratio, 0.0)
