"""The network and the refinement judged against the reference posterior
(:func:`specinv.fitting.posterior.reference_posterior`) of the same test spectra."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .information import efficient_median_relative_error
from .metrics import interval_coverage, median_relative_error

#: the posterior's central intervals whose coverage is reported: (lower, upper quantile)
INTERVALS = {"1σ": (0.16, 0.84), "2σ": (0.025, 0.975)}


def _interval_coverage(posterior: xr.Dataset, lower: float, upper: float) -> np.ndarray:
    """Share of spectra whose truth lies in the posterior's [lower, upper] quantiles."""
    q = posterior["quantiles"]
    low, high = (q.sel(quantile=v, method="nearest").values for v in (lower, upper))
    true = posterior["true"].values
    return np.mean((true >= low) & (true <= high), axis=0)


def rank_uniformity_pvalue(ranks: np.ndarray) -> np.ndarray:
    """Kolmogorov–Smirnov p-value per parameter that the truth's ranks [N, D] among the
    posterior's draws are uniform, as they are when the spectra are drawn from the prior
    and the posterior is right (simulation-based calibration)."""
    from scipy.stats import kstest

    return np.array([kstest(col, "uniform").pvalue for col in np.asarray(ranks).T])


def posterior_table(
    posterior: xr.Dataset,
    methods: Mapping[str, xr.Dataset],
    information: xr.Dataset | None = None,
    network: str | None = None,
) -> pd.DataFrame:
    """Per parameter, on the spectra of the reference posterior:

    ``efficient_MRE`` (from the Cramér–Rao bounds, if ``information`` is given), ``MRE
    posterior mean`` (the best any estimator can do within the prior, in the mean-square
    sense), ``MRE <method>`` for every method (label -> fit result), the posterior's own
    1σ / 2σ coverage (its central 68 % / 95 % intervals) and the ``rank KS p-value`` of
    the truth's ranks (calibration of the posterior itself); for the ``network`` (a label
    of ``methods`` whose result has ``std``): its 1σ / 2σ coverage, the median ratio of its
    uncertainty to the posterior's standard deviation, and the median distance of its
    estimate from the posterior mean in posterior standard deviations.  Last the median
    effective number of draws per spectrum (walkers × kept steps / autocorrelation time).
    """
    samples = posterior["sample"].values
    true = posterior["true"].values
    post_sd = posterior["std"].values
    out = pd.DataFrame(index=pd.Index(posterior["param"].values.astype(str), name="param"))
    if information is not None:
        info = information.sel(sample=samples)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = info["crlb_std"].values / np.abs(info["true"].values)
        out["efficient_MRE"] = [efficient_median_relative_error(col) for col in rel.T]
    out["MRE posterior mean"] = median_relative_error(posterior["estimate"].values, true)
    for label, fit in methods.items():
        f = fit.sel(sample=samples)
        out[f"MRE {label}"] = median_relative_error(f["estimate"].values, f["true"].values)
    for name, (lower, upper) in INTERVALS.items():
        out[f"coverage {name} posterior"] = _interval_coverage(posterior, lower, upper)
    out["rank KS p-value"] = rank_uniformity_pvalue(posterior["rank"].values)
    if network is not None:
        f = methods[network].sel(sample=samples)
        est, sd = f["estimate"].values, f["std"].values
        for k, name in ((1.0, "1σ"), (2.0, "2σ")):
            out[f"coverage {name} {network}"] = interval_coverage(est, sd, true, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{network} std / posterior std"] = np.median(sd / post_sd, axis=0)
            out[f"|{network} − posterior mean| / posterior std"] = np.median(
                np.abs(est - posterior["estimate"].values) / post_sd, axis=0
            )
    kept_steps = posterior.sizes["draw"] / posterior.attrs["walkers"]
    effective = (
        posterior.attrs["walkers"]
        * kept_steps
        * posterior.attrs["thin"]
        / np.maximum(posterior["autocorr_steps"].values, 1.0)
    )
    out["effective draws (median)"] = float(np.median(effective))
    if "stuck_walkers" in posterior:
        out["spectra with stuck walkers"] = int((posterior["stuck_walkers"].values > 0).sum())
    return out
