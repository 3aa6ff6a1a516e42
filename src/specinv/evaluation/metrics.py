"""Metrics of Muzakka et al. 2024 (Methods; the README's "Evaluation and fits"), per parameter
unless noted.

* relative error |ŷ − y₀| / y₀ and its median over the test spectra (MRE);
* χ² of a fit, Σ_i (x_i − s_i(ŷ))² / (x_i + 1) over the region of interest (RoI) of the
  un-merged noisy spectrum x, and its percentile profile next to the ideal χ²_ν with
  ν = number of RoI channels; goodness-of-fit acceptance: χ² ≤ the (1 − α) quantile of χ²_ν;
* coverage score γ = (Δy − |ŷ − y₀|) / (Δy + |ŷ − y₀|) and its average (ACS); a 1σ
  uncertainty calibrated at q = 0.68 gives ACS in [q − 1, q] = [−0.32, 0.68];
* empirical coverage: the share of spectra with |ŷ − y₀| ≤ k·Δy.
"""

from __future__ import annotations

import numpy as np
import torch

#: Percentiles of the χ² profiles (the paper's Tables 2–4 and 6).
PERCENTILES = (5, 10, 25, 50, 75, 90, 95)


def relative_error(estimate: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|estimate − true| / |true|, element-wise ([N, D]); where the true value is 0 (e.g. a
    B-spline weight of a strain profile): 0 for an exact estimate, else infinite."""
    estimate, true = np.asarray(estimate, dtype=float), np.asarray(true, dtype=float)
    if estimate.shape != true.shape:
        raise ValueError(f"estimate: shape {estimate.shape} differs from true {true.shape}")
    error = np.abs(estimate - true)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(true == 0, np.where(error == 0, 0.0, np.inf), error / np.abs(true))


def signed_relative_error(estimate: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(estimate − true) / |true|, element-wise ([N, D]): the signed version of
    :func:`relative_error` (its absolute value is that), ±infinite for a true value of 0
    estimated inexactly."""
    estimate, true = np.asarray(estimate, dtype=float), np.asarray(true, dtype=float)
    if estimate.shape != true.shape:
        raise ValueError(f"estimate: shape {estimate.shape} differs from true {true.shape}")
    error = estimate - true
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            true == 0, np.where(error == 0, 0.0, np.sign(error) * np.inf), error / np.abs(true)
        )


def median_relative_error(estimate: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Median over spectra of the relative error, per parameter [D]."""
    return np.median(relative_error(estimate, true), axis=0)


def roi_mask(n_channels: int, first_channel: int, merge: int, kept_bins: np.ndarray) -> np.ndarray:
    """Channels of the region of interest: those summed into a bin that preprocessing kept.

    Bin j of the preprocessing holds raw channels first_channel + merge·j … + merge − 1.
    """
    mask = np.zeros(n_channels, dtype=bool)
    kept = np.asarray(kept_bins, dtype=np.int64)
    channels = first_channel + merge * kept[:, None] + np.arange(merge)[None, :]
    if channels.size and (channels.min() < 0 or channels.max() >= n_channels):
        raise ValueError(
            f"kept_bins: bins reach channel {channels.max()}, the spectra have {n_channels}"
        )
    mask[channels.ravel()] = True
    return mask


def chi2_statistic(observed, expected, roi=None):
    """χ² = Σ_i (x_i − s_i)² / (x_i + 1) over the RoI channels, per spectrum.

    Args:
        observed: measured (noisy) counts x [..., C] (array or tensor).
        expected: simulated counts s [..., C] (same type; tensors keep gradients).
        roi: boolean mask [C] of the channels summed (default: all).

    Returns:
        [...] χ² values (a tensor if ``expected`` is one, else an array).
    """
    if isinstance(expected, torch.Tensor):
        x = torch.as_tensor(observed, dtype=expected.dtype, device=expected.device)
        terms = (x - expected) ** 2 / (x + 1.0)
        if roi is not None:
            terms = terms[..., torch.as_tensor(roi, device=expected.device)]
        return terms.sum(-1)
    x = np.asarray(observed, dtype=np.float64)
    terms = (x - np.asarray(expected, dtype=np.float64)) ** 2 / (x + 1.0)
    if roi is not None:
        terms = terms[..., np.asarray(roi, dtype=bool)]
    return terms.sum(-1)


def chi2_profile(chi2: np.ndarray) -> dict[str, float]:
    """Percentiles (5 … 95), mean and standard deviation of χ² values."""
    chi2 = np.asarray(chi2, dtype=np.float64)
    if chi2.size == 0 or not np.isfinite(chi2).all():
        raise ValueError("chi2: expected a non-empty array of finite values")
    out = {
        f"p{q}": float(v)
        for q, v in zip(PERCENTILES, np.percentile(chi2, PERCENTILES), strict=True)
    }
    out.update(mean=float(chi2.mean()), std=float(chi2.std()))
    return out


def ideal_chi2_profile(dof: int) -> dict[str, float]:
    """The same profile of the ideal χ²_ν distribution (ν = ``dof``)."""
    from scipy import stats  # imported on use: scipy.stats takes ~1 s to import

    dist = stats.chi2(dof)
    out = {f"p{q}": float(dist.ppf(q / 100)) for q in PERCENTILES}
    out.update(mean=float(dof), std=float(np.sqrt(2.0 * dof)))
    return out


def chi2_threshold(dof: int, alpha: float = 0.05) -> float:
    """The (1 − α) quantile of χ²_ν: fits with a larger χ² are rejected."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha}")
    from scipy import stats

    return float(stats.chi2(dof).ppf(1.0 - alpha))


def acceptance_rate(chi2: np.ndarray, dof: int, alpha: float = 0.05) -> float:
    """Share of fits accepted by the goodness-of-fit test at level α."""
    return float(np.mean(np.asarray(chi2) <= chi2_threshold(dof, alpha)))


def coverage_scores(estimate: np.ndarray, uncertainty: np.ndarray, true: np.ndarray) -> np.ndarray:
    """γ = (Δy − |ŷ − y₀|) / (Δy + |ŷ − y₀|) in [−1, 1], element-wise ([N, D]).

    The rare 0/0 (a zero uncertainty and an exact estimate) counts as γ = 0.
    """
    err = np.abs(np.asarray(estimate, dtype=float) - np.asarray(true, dtype=float))
    dy = np.asarray(uncertainty, dtype=float)
    if (dy < 0).any():
        raise ValueError("uncertainty: expected standard deviations >= 0")
    den = dy + err
    return np.where(den > 0, (dy - err) / np.where(den > 0, den, 1.0), 0.0)


def interval_coverage(
    estimate: np.ndarray, uncertainty: np.ndarray, true: np.ndarray, k: float = 1.0
) -> np.ndarray:
    """Share of spectra whose true value lies within ŷ ± k·Δy, per parameter [D]."""
    err = np.abs(np.asarray(estimate, dtype=float) - np.asarray(true, dtype=float))
    return np.mean(err <= k * np.asarray(uncertainty, dtype=float), axis=0)


def profile_errors(
    estimate_depths: np.ndarray,
    estimate_values: np.ndarray,
    true_depths: np.ndarray,
    true_values: np.ndarray,
    points: int = 400,
) -> np.ndarray:
    """Relative rms errors [n] of depth profiles: the rms difference of the estimated and
    the true profile over the union of their depth ranges, [0, the deeper one's deepest
    point], on ``points`` equally spaced depths, divided by the largest |true value|.

    Profiles are given at increasing depths [n, P] (each row its own depths, e.g. at
    fractions of its own thickness) and interpolated linearly; above its first depth and
    below its last a profile keeps its first and last value (a profile that ends at 0 at its
    deepest point is then 0 below it).  A profile of the right
    shape at the wrong depth thus counts as wrong, as the rms difference of e(z) over z.
    """
    ed, ev, td, tv = (
        np.atleast_2d(np.asarray(a, dtype=np.float64))
        for a in (estimate_depths, estimate_values, true_depths, true_values)
    )
    if not (ed.shape == ev.shape and td.shape == tv.shape and ed.shape[0] == td.shape[0]):
        raise ValueError(
            f"profiles: expected depths and values of equal shapes [n, P] for both, got "
            f"{ed.shape}, {ev.shape}, {td.shape}, {tv.shape}"
        )
    out = np.empty(len(ed))
    grid = (np.arange(points) + 0.5) / points
    for i in range(len(ed)):
        z = grid * max(ed[i, -1], td[i, -1])
        diff = np.interp(z, ed[i], ev[i]) - np.interp(z, td[i], tv[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i] = np.sqrt(np.mean(diff**2)) / np.max(np.abs(tv[i]))
    return out
