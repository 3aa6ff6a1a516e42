"""Counting noise for simulated spectra."""

from __future__ import annotations

import torch


def poisson_noise(
    expected: torch.Tensor, generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Tensor:
    """Draw Poisson counts with the given expected values.

    Pass either a ``torch.Generator`` (on the tensor's device) or an integer ``seed``; with
    neither, torch's global generator is used.  The result has the dtype of ``expected``.

    Raises:
        ValueError: if ``expected`` holds negative or non-finite values.
    """
    if generator is not None and seed is not None:
        raise ValueError("poisson_noise: give a generator or a seed, not both")
    with torch.no_grad():
        if not bool(torch.isfinite(expected).all()) or bool((expected < 0).any()):
            raise ValueError("poisson_noise: expected counts must be finite and >= 0")
    if seed is not None:
        generator = torch.Generator(device=expected.device).manual_seed(int(seed))
    return torch.poisson(expected.detach(), generator=generator)
