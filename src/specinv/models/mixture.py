"""Mixtures of diagonal Gaussians: log-likelihood, moments, sampling.

A mixture over D parameters with M components is given by ``log_pi`` [..., M] (log mixture
weights), ``mu`` [..., M, D] and ``sigma`` [..., M, D] (standard deviations).
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def mixture_log_prob(
    log_pi: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """log p(y) [...] of targets ``y`` [..., D] (log-sum-exp over components)."""
    z = (y.unsqueeze(-2) - mu) / sigma
    log_normal = -0.5 * (z * z + _LOG_2PI) - torch.log(sigma)  # [..., M, D]
    return torch.logsumexp(log_pi + log_normal.sum(-1), dim=-1)


def mixture_nll(log_pi, mu, sigma, y) -> torch.Tensor:
    """Mean negative log-likelihood of a batch (the training loss)."""
    return -mixture_log_prob(log_pi, mu, sigma, y).mean()


def mixture_mean(log_pi: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """E[y] = Σ_m π_m μ_m, [..., D]."""
    return (log_pi.exp().unsqueeze(-1) * mu).sum(-2)


def mixture_variance(log_pi, mu, sigma) -> torch.Tensor:
    """Per-parameter variance Σ_m π_m (σ_m² + (μ_m − E[y])²), [..., D]."""
    pi = log_pi.exp().unsqueeze(-1)
    dev = mu - mixture_mean(log_pi, mu).unsqueeze(-2)
    return (pi * (sigma * sigma + dev * dev)).sum(-2)


def mixture_covariance(log_pi, mu, sigma) -> torch.Tensor:
    """Full covariance Σ_m π_m [diag σ_m² + (μ_m − E[y])(μ_m − E[y])ᵀ], [..., D, D]."""
    pi = log_pi.exp()[..., None, None]
    dev = mu - mixture_mean(log_pi, mu).unsqueeze(-2)
    outer = dev.unsqueeze(-1) * dev.unsqueeze(-2)
    return (pi * (torch.diag_embed(sigma * sigma) + outer)).sum(-3)


def mixture_sample(log_pi, mu, sigma, n: int, generator: torch.Generator | None = None):
    """``n`` draws per mixture, [n, ..., D]."""
    batch = log_pi.shape[:-1]
    flat_pi = log_pi.reshape(-1, log_pi.shape[-1]).exp()
    comp = torch.multinomial(flat_pi, n, replacement=True, generator=generator).T  # [n, B]
    mu_f = mu.reshape(-1, *mu.shape[-2:])
    sig_f = sigma.reshape(-1, *sigma.shape[-2:])
    rows = torch.arange(mu_f.shape[0], device=mu.device)
    chosen_mu, chosen_sigma = mu_f[rows, comp], sig_f[rows, comp]  # [n, B, D]
    noise = torch.randn(chosen_mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return (chosen_mu + chosen_sigma * noise).reshape(n, *batch, mu.shape[-1])
