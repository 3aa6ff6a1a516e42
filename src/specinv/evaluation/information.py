"""The information limit of a measurement: Cramér–Rao bounds for Poisson-counted spectra.

For counts x_i ~ Poisson(λ_i(y)) in the channels i of the region of interest, the Fisher
information of the parameters y is

    F_jk = Σ_i (∂λ_i/∂y_j)(∂λ_i/∂y_k) / λ_i,

and every unbiased estimator of y has a covariance of at least F⁻¹ (Cramér–Rao). The
square roots of diag(F⁻¹) are therefore the smallest standard deviations any fit of these
spectra can reach without prior knowledge; an efficient estimator (maximum likelihood, in
the limit of many counts) reaches them. Where the bound is comparable to the prior box,
an estimator that uses the prior (the MDN, or a fit that stays inside the box) can beat
it by shrinking towards the prior — the bound then says that the data alone do not
determine the parameter.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf


def poisson_fisher_information(expected, jacobian, roi=None) -> np.ndarray:
    """Fisher information [..., D, D] of the parameters of Poisson-counted spectra.

    Args:
        expected: expected counts λ [..., C] at the parameters.
        jacobian: their derivatives ∂λ/∂y [..., C, D].
        roi: boolean mask [C] of the channels used (default: all).

    Channels with λ = 0 carry no information (their counts are zero whatever the
    parameters near y) and are left out.
    """
    lam = np.asarray(expected, dtype=np.float64)
    jac = np.asarray(jacobian, dtype=np.float64)
    if jac.shape[:-1] != lam.shape:
        raise ValueError(f"jacobian: expected shape {lam.shape + ('D',)}, got {jac.shape}")
    if (lam < 0).any() or not np.isfinite(lam).all() or not np.isfinite(jac).all():
        raise ValueError("expected, jacobian: counts must be finite and >= 0, derivatives finite")
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != lam.shape[-1:]:
            raise ValueError(
                f"roi: expected a mask of {lam.shape[-1]} channels, got shape {roi.shape}"
            )
        lam, jac = lam[..., roi], jac[..., roi, :]
    inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > 0)
    return np.einsum("...ij,...i,...ik->...jk", jac, inv, jac)


def fisher_covariance(fisher, rtol: float = 1e-12) -> np.ndarray:
    """The inverse of the Fisher information [..., D, D]: the smallest covariance of any
    unbiased estimator (and, at the fitted values, the covariance of a least-squares fit).

    A parameter with no information (F_jj = 0), or one that moves along a direction the
    spectrum does not see (an eigenvalue of the normalised information below ``rtol``
    times the largest), gets ``inf`` on the diagonal and ``nan`` off it.
    """
    f = np.asarray(fisher, dtype=np.float64)
    if f.ndim < 2 or f.shape[-1] != f.shape[-2]:
        raise ValueError(f"fisher: expected square matrices [..., D, D], got {f.shape}")
    if f.shape[-1] == 0:
        return f.copy()
    diag = np.diagonal(f, axis1=-2, axis2=-1)
    seen = diag > 0
    scale = np.where(seen, 1.0 / np.sqrt(np.where(seen, diag, 1.0)), 0.0)
    g = f * scale[..., :, None] * scale[..., None, :]  # unit diagonal where seen
    mu, v = np.linalg.eigh(g)
    null = mu <= rtol * mu.max(axis=-1, keepdims=True)
    inv_mu = np.where(null, 0.0, 1.0 / np.where(null, 1.0, mu))
    cov = np.einsum("...jm,...m,...km->...jk", v, inv_mu, v) * scale[..., :, None]
    cov = cov * scale[..., None, :]
    loads_on_null = np.einsum("...jm,...m->...j", v * v, null.astype(np.float64)) > 1e-9
    bad = ~seen | loads_on_null
    cov = np.where(bad[..., :, None] | bad[..., None, :], np.nan, cov)
    d = np.arange(f.shape[-1])
    cov[..., d, d] = np.where(bad, np.inf, cov[..., d, d])
    return cov


def cramer_rao_std(fisher, rtol: float = 1e-12) -> np.ndarray:
    """Cramér–Rao bound on the standard deviation of each parameter, sqrt(diag F⁻¹) [..., D]
    (``inf`` where :func:`fisher_covariance` finds no information)."""
    cov = fisher_covariance(fisher, rtol)
    return np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))


def efficient_median_relative_error(relative_std) -> float:
    """Median relative error |ŷ − y| / y over spectra of an unbiased estimator whose errors
    are Gaussian with the given relative standard deviations σ_k / y_k [K] (the MRE an
    efficient estimator would reach): the m with mean_k P(|z| σ_k/y_k ≤ m) = 1/2."""
    s = np.asarray(relative_std, dtype=np.float64).ravel()
    if s.size == 0 or (s < 0).any() or np.isnan(s).any():
        raise ValueError("relative_std: expected a non-empty array of values >= 0")
    if np.isinf(s).mean() >= 0.5:
        return float("inf")
    finite = s[np.isfinite(s)]
    if (finite == 0).sum() >= 0.5 * s.size:
        return 0.0

    def below(m: float) -> float:
        with np.errstate(divide="ignore"):
            p = np.where(finite > 0, erf(m / (np.sqrt(2.0) * finite)), 1.0)
        return p.sum() / s.size - 0.5

    return float(brentq(below, 0.0, 10.0 * finite.max()))
