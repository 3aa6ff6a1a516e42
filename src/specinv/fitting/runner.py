"""Fitting the test spectra of a simulated dataset (regression techniques): the paper's
Autofit, ML + Autofit (from the network's estimate), and the batched gradient
(Levenberg–Marquardt) refinement, with one result format.

A fit result is an :class:`xarray.Dataset` over ``sample`` (the dataset's sample index) and
``param``: ``estimate`` (the fitted parameters), ``start``, ``chi2`` (the Poisson χ² of the
estimate over the region of interest, whatever the fit minimised), ``objective`` (what it
minimised: the technique's fit statistic, see :attr:`Technique.fit_statistic`),
``n_simulations`` (spectra simulated for that fit), and as attributes the method, its
settings, the statistic, the degrees of freedom (RoI channels) and the wall time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from tqdm import tqdm

from ..data.config import DatasetConfig
from ..data.preprocess import SpectrumTransform
from ..evaluation.information import cramer_rao_std, poisson_fisher_information
from ..evaluation.metrics import roi_mask
from .levenberg_marquardt import refine_levenberg_marquardt
from .nelder_mead import minimize_batched
from .problem import NONLINEAR_STATISTICS, SpectrumFitProblem
from .settings import FIT_METHODS, FitSettings, method_name  # noqa: F401 (re-exported)
from .starts import perturbed_starts


def parameter_bounds(technique) -> tuple[np.ndarray, np.ndarray]:
    """The technique's prior box (low [D], high [D]): every fit stays inside it.  A fixed
    parameter gets a box of ±1e-9 relative around its value."""
    low, high = (np.asarray(b, dtype=np.float64) for b in technique.bounds())
    pad = 1e-9 * np.maximum(np.abs(low), 1.0)
    return np.where(high > low, low, low - pad), np.where(high > low, high, high + pad)


def make_problem(
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    settings: FitSettings,
    device: str | None = None,
    statistic: str | None = None,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> SpectrumFitProblem:
    """The fit problem of the raw test spectra in ``test`` (RoI: the channels of the bins
    the preprocessing kept) with ``statistic`` (None: ``settings.statistic``, else the
    technique's fit statistic) and, if given, a Gaussian ``prior`` (mean, std [N, D]) of
    every spectrum's parameters."""
    technique = _technique_on(cfg, device)
    statistic = statistic or settings.statistic or technique.fit_statistic
    counts = test["counts"].values
    roi = roi_mask(
        counts.shape[1],
        transform.settings.first_channel,
        transform.settings.merge,
        transform.kept_bins,
    )
    low, high = parameter_bounds(technique)
    return SpectrumFitProblem(
        technique.simulate,
        counts,
        roi,
        low,
        high,
        batch_size=settings.batch_size,
        dtype=technique.dtype,
        device=technique.device,
        partial=None if statistic in NONLINEAR_STATISTICS else technique.partial_simulation(),
        statistic=statistic,
        prior_mean=None if prior is None else prior[0],
        prior_std=None if prior is None else prior[1],
    )


def _technique_on(cfg: DatasetConfig, device: str | None):
    """The technique of the dataset, on ``device`` (None: the data's; float32 on a GPU)."""
    if device is None or device == cfg.device:
        return cfg.technique_instance
    return cfg.build_technique(device=device, dtype=cfg.dtype if device == "cpu" else "float32")


def _result(
    method: str,
    test: xr.Dataset,
    estimate: np.ndarray,
    start: np.ndarray,
    chi2: np.ndarray,
    n_sim: np.ndarray,
    dof: int,
    seconds: float,
    details: Mapping[str, Any],
    objective: np.ndarray | None = None,
    statistic: str = "poisson",
) -> xr.Dataset:
    """A fit result (module docstring); ``objective`` defaults to ``chi2`` (a fit of the
    Poisson χ² itself)."""
    unit = test["params"].attrs.get("units", "")
    dims = ("sample", "param")
    return xr.Dataset(
        {
            "estimate": (dims, estimate, {"long_name": f"{method} estimate", "units": unit}),
            "start": (dims, start, {"long_name": "starting parameters", "units": unit}),
            "true": (dims, test["params"].values, {"long_name": "true parameters", "units": unit}),
            "chi2": ("sample", chi2, {"long_name": "Poisson chi2 over the region of interest"}),
            "objective": (
                "sample",
                chi2 if objective is None else objective,
                {"long_name": f"minimised {statistic} fit statistic"},
            ),
            "n_simulations": (
                "sample",
                n_sim.astype(np.float64),
                {
                    "long_name": "spectra simulated for this fit (a partial "
                    "spectrum counts its share of the cost)"
                },
            ),
        },
        coords={"sample": test["sample"].values, "param": test["param"].values},
        attrs={
            "method": method,
            "statistic": statistic,
            "dof": dof,
            "wall_seconds": seconds,
            "details": json.dumps(dict(details), default=str),
            "data_hash": test.attrs.get("data_hash", ""),
        },
    )


def chi2_of_estimates(
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    estimate: np.ndarray,
    settings: FitSettings,
) -> tuple[np.ndarray, int]:
    """Poisson χ² of given estimates (clipped into the prior box, where the forward model
    is defined) and the degrees of freedom."""
    problem = make_problem(cfg, test, transform, settings, statistic="poisson")
    chi2 = problem.chi2(np.clip(estimate, problem.low, problem.high), np.arange(problem.n_spectra))
    return chi2, problem.dof


def _poisson_chi2(problem, cfg, test, transform, settings, estimate, objective) -> np.ndarray:
    """Poisson χ² [B] of the ``estimate`` [B, D] of a fit of ``problem``: its ``objective``
    itself where the fit minimised χ² alone, else evaluated afresh."""
    if problem.statistic == "poisson" and not problem.has_prior:
        return objective
    return chi2_of_estimates(cfg, test, transform, estimate, settings)[0]


def network_back_simulation(
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    predictions: xr.Dataset,
    settings: FitSettings,
) -> xr.Dataset:
    """The network alone: its estimate (the MDN's mixture mean), back-simulated (χ² of the
    estimate); ``method`` is the model kind."""
    t0 = time.perf_counter()
    mean = predictions["mean"].values
    chi2, dof = chi2_of_estimates(cfg, test, transform, mean, settings)
    kind = predictions.attrs.get("model_kind", "mdn")
    out = _result(
        kind,
        test,
        mean,
        mean,
        chi2,
        np.ones(len(mean)),
        dof,
        time.perf_counter() - t0,
        {"checkpoint": predictions.attrs.get("checkpoint")},
    )
    out["std"] = (
        ("sample", "param"),
        predictions["std"].values,
        {
            "long_name": predictions["std"].attrs.get("long_name", "uncertainty"),
            "units": predictions["std"].attrs.get("units", ""),
        },
    )
    out.attrs["model_label"] = predictions.attrs.get("model_label", kind.upper())
    return out


def autofit_start(
    cfg: DatasetConfig, settings: FitSettings, n: int, train_mean: np.ndarray | None = None
) -> np.ndarray:
    """The Autofit's fixed start [n, D]: the centre of the prior box (or the training mean)."""
    if settings.autofit_start == "mean":
        if train_mean is None:
            raise ValueError("fitting.autofit_start: mean needs the training parameters")
        return np.tile(np.asarray(train_mean, dtype=np.float64), (n, 1))
    low, high = parameter_bounds(cfg.technique_instance)
    return np.tile(0.5 * (low + high), (n, 1))


def nelder_mead_fits(
    method: str,
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    start: np.ndarray,
    settings: FitSettings,
    progress: bool = True,
) -> xr.Dataset:
    """Autofit (``method="autofit"``, 200·D evaluations) or ML + Autofit (``"<kind>_autofit"``,
    e.g. ``mdn_autofit``, 50·D) of every spectrum in ``test``, all in lockstep."""
    per_param = (
        settings.autofit_evaluations_per_parameter
        if method == "autofit"
        else settings.ml_autofit_evaluations_per_parameter
    )
    problem = make_problem(cfg, test, transform, settings)
    d = problem.n_parameters
    start = np.clip(np.asarray(start, dtype=np.float64), problem.low, problem.high)
    t0 = time.perf_counter()
    res = minimize_batched(
        problem.chi2,
        start,
        bounds=(problem.low, problem.high),
        max_evaluations=per_param * d,
        restart_every=settings.restart_every,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    chi2 = _poisson_chi2(problem, cfg, test, transform, settings, res.x, res.fun)
    details = {
        "max_evaluations": per_param * d,
        "restart_every": settings.restart_every,
        "adaptive": True,
        "n_restarts_mean": float(np.mean(res.n_restarts)),
        "converged": float(np.mean(res.converged)),
    }
    return _result(
        method,
        test,
        res.x,
        start,
        chi2,
        problem.n_simulations,
        problem.dof,
        seconds,
        details,
        objective=res.fun,
        statistic=problem.statistic,
    )


def refinement_fits(
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    start: np.ndarray,
    settings: FitSettings,
    progress: bool = True,
    method: str = "mdn_refine",
    start_fit: xr.Dataset | None = None,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> xr.Dataset:
    """Network + gradient refinement: batched Levenberg–Marquardt through the differentiable
    simulator from the network's estimate, all spectra at once.

    With ``settings.refine_starts`` > 1 every spectrum is first refined from that many
    starts (the estimate and perturbations of it, :func:`perturbed_starts`) for
    ``refine_screen_iterations`` steps, and the best of them (lowest statistic) is refined
    to the end; the simulations of all starts count in ``n_simulations``.

    ``start_fit``: the fit ``start`` comes from (network + Autofit, ``settings.refine_from
    = "ml_autofit"``), on the same spectra; its simulations and wall time are added to the
    refinement's, so that the row compares the whole chain with the other methods.

    ``prior``: the network's estimates and standard deviations [N, D]
    (``settings.refine_prior = "network"``): the refinement then minimises the statistic
    plus Σ ((estimate − y) / std)² (:class:`SpectrumFitProblem`), a maximum a posteriori
    fit."""
    if start_fit is not None and not np.array_equal(
        start_fit["sample"].values, test["sample"].values
    ):
        raise ValueError(
            f"refinement_fits: the start fit ({start_fit.attrs.get('method')}) covers samples "
            f"{_sample_span(start_fit)}, the refinement {_sample_span(test)}: rerun it with "
            "the same fitting.spectra"
        )
    statistic = settings.refine_statistic  # None: settings.statistic, else the technique's
    problem = make_problem(
        cfg, test, transform, settings, device=settings.device, statistic=statistic, prior=prior
    )
    start = np.clip(np.asarray(start, dtype=np.float64), problem.low, problem.high)
    lm = {
        "chi2_tol": settings.refine_chi2_tolerance,
        "broyden": settings.refine_broyden,
        "jacobian": settings.refine_jacobian,
        "progress": progress,
    }
    t0 = time.perf_counter()
    first, screen_simulations = start, 0.0
    if settings.refine_starts > 1:
        k = settings.refine_starts
        starts = perturbed_starts(
            start,
            problem.low,
            problem.high,
            k,
            settings.refine_start_spread,
            settings.seed,
            test["sample"].values,
        )
        copies = test.isel(sample=np.repeat(np.arange(len(start)), k))
        copied_prior = None if prior is None else tuple(np.repeat(p, k, axis=0) for p in prior)
        screen = make_problem(
            cfg,
            copies,
            transform,
            settings,
            device=settings.device,
            statistic=statistic,
            prior=copied_prior,
        )
        screened = refine_levenberg_marquardt(
            screen,
            starts.reshape(len(start) * k, -1),
            max_iterations=settings.refine_screen_iterations,
            **lm,
        )
        best = screened.chi2.reshape(len(start), k).argmin(axis=1)
        first = screened.x.reshape(len(start), k, -1)[np.arange(len(start)), best]
        screen_simulations = screen.n_simulations.reshape(len(start), k).sum(axis=1)
    res = refine_levenberg_marquardt(
        problem, first, max_iterations=settings.refine_iterations, **lm
    )
    seconds = time.perf_counter() - t0
    if start_fit is not None:
        screen_simulations = screen_simulations + start_fit["n_simulations"].values
        seconds += float(start_fit.attrs["wall_seconds"])
    details = {
        "max_iterations": settings.refine_iterations,
        "chi2_tolerance": settings.refine_chi2_tolerance,
        "broyden": settings.refine_broyden,
        "jacobian": settings.refine_jacobian,
        "device": str(problem.device),
        "refine_from": settings.refine_from,
        "refine_prior": settings.refine_prior,
        "start_method": "network" if start_fit is None else str(start_fit.attrs["method"]),
        "iterations_mean": float(res.n_iterations.mean()),
        "converged": float(res.converged.mean()),
        "starts": settings.refine_starts,
    }
    if settings.refine_starts > 1:
        details.update(
            start_spread=settings.refine_start_spread,
            screen_iterations=settings.refine_screen_iterations,
            seed=settings.seed,
            best_start_share=np.bincount(best, minlength=settings.refine_starts).tolist(),
        )
    chi2 = _poisson_chi2(problem, cfg, test, transform, settings, res.x, res.chi2)
    chi2_start = chi2_of_estimates(cfg, test, transform, start, settings)[0]
    # the minimised statistic at the start (a problem of its own: not charged to the fit)
    objective_start = make_problem(
        cfg, test, transform, settings, statistic=statistic, prior=prior
    ).chi2(start, np.arange(len(start)))
    out = _result(
        method,
        test,
        res.x,
        start,
        chi2,
        res.n_simulations + screen_simulations,
        problem.dof,
        seconds,
        details,
        objective=res.chi2,
        statistic=problem.statistic,
    )
    out.attrs["start_method"] = details["start_method"]
    out.attrs["refine_prior"] = settings.refine_prior
    out["chi2_start"] = ("sample", chi2_start, {"long_name": "Poisson chi2 at the start"})
    out["objective_start"] = (
        "sample",
        objective_start,
        {"long_name": f"{problem.statistic} fit statistic at the start"},
    )
    out["n_iterations"] = (
        "sample",
        res.n_iterations,
        {"long_name": "Levenberg-Marquardt iterations"},
    )
    return out


def refinement_start(
    settings: FitSettings, network: xr.Dataset | None, start_fit: xr.Dataset | None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Where :func:`refinement_fits` starts and what prior it uses, from the settings:
    the start is network + Autofit's estimates (``refine_from: ml_autofit``, ``start_fit``)
    or the network's means; the prior (``refine_prior: network``) the network's means and
    standard deviations, else None. ``network``: the network's predictions of the fitted
    spectra (needed unless the start is ``start_fit`` and there is no prior)."""
    needs_network = settings.refine_from == "network" or settings.refine_prior == "network"
    if needs_network and network is None:
        raise ValueError("refinement_start: these settings need the network's predictions")
    if settings.refine_from == "ml_autofit":
        if start_fit is None:
            raise ValueError("refinement_start: refine_from ml_autofit needs its fit")
        start = start_fit["estimate"].values
    else:
        start = network["mean"].values
    prior = (
        (network["mean"].values, network["std"].values)
        if settings.refine_prior == "network"
        else None
    )
    return start, prior


def cramer_rao_bounds(
    technique,
    params: np.ndarray,
    roi: np.ndarray | None,
    batch_size: int = 4096,
    progress: bool = True,
    desc: str = "Cramer-Rao bounds",
) -> tuple[np.ndarray, np.ndarray]:
    """Cramér–Rao bounds on the standard deviations of ``params`` [N, D] from the Poisson
    counts of the technique's spectra over the channels ``roi`` (None: all): ``(std [N, D],
    expected counts summed over the region [N])``.

    The derivatives of the expected counts are exact (forward-mode through the
    differentiable simulator, D dual-number simulations per spectrum)."""
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    n, d = params.shape
    low, high = parameter_bounds(technique)
    # with zero observed counts the residuals are −λ and their Jacobian −∂λ/∂y
    problem = SpectrumFitProblem(
        technique.simulate,
        np.zeros((n, technique.n_channels)),
        roi,
        low,
        high,
        batch_size=batch_size,
        dtype=technique.dtype,
        device=technique.device,
        statistic="poisson",
    )
    chunk = max(1, batch_size // max(1, d))
    std = np.empty_like(params)
    total = np.empty(n)
    with tqdm(
        total=n,
        desc=desc,
        unit="spectra",
        file=sys.stderr,
        mininterval=2.0,
        disable=not progress,
    ) as bar:
        for i in range(0, n, chunk):
            rows = np.arange(i, min(i + chunk, n))
            r, jac = problem.jacobian(params[rows], rows, method="forward-mode")
            expected = (-r).clamp_min(0).cpu().numpy()
            std[rows] = cramer_rao_std(poisson_fisher_information(expected, -jac.cpu().numpy()))
            total[rows] = expected.sum(axis=1)
            bar.update(len(rows))
    return std, total


def information_limit(
    cfg: DatasetConfig,
    test: xr.Dataset,
    transform: SpectrumTransform,
    settings: FitSettings,
    progress: bool = True,
) -> xr.Dataset:
    """Cramér–Rao bounds of the test spectra at their true parameters over the region of
    interest (:mod:`specinv.evaluation.information`): the smallest standard deviation of
    each parameter that any unbiased fit of these spectra can reach.

    The derivatives of the expected counts are exact (forward-mode through the
    differentiable simulator, D dual-number simulations per spectrum)."""
    technique = _technique_on(cfg, settings.device)
    roi = roi_mask(
        test["counts"].shape[1],
        transform.settings.first_channel,
        transform.settings.merge,
        transform.kept_bins,
    )
    true = test["params"].values.astype(np.float64)
    t0 = time.perf_counter()
    std, _ = cramer_rao_bounds(technique, true, roi, settings.batch_size, progress)
    unit = test["params"].attrs.get("units", "")
    return xr.Dataset(
        {
            "crlb_std": (
                ("sample", "param"),
                std,
                {"long_name": "Cramér-Rao bound on the standard deviation", "units": unit},
            ),
            "true": (("sample", "param"), true, {"long_name": "true parameters", "units": unit}),
        },
        coords={"sample": test["sample"].values, "param": test["param"].values},
        attrs={
            "dof": int(roi.sum()),
            "wall_seconds": time.perf_counter() - t0,
            "data_hash": test.attrs.get("data_hash", ""),
        },
    )


def merge_fit_shards(parts: list[xr.Dataset]) -> xr.Dataset:
    """One fit result from its shards (wall times add up)."""
    parts = sorted(parts, key=lambda p: int(p["sample"][0]))
    merged = xr.concat(parts, dim="sample", combine_attrs="override")
    merged.attrs["wall_seconds"] = float(sum(p.attrs["wall_seconds"] for p in parts))
    merged.attrs["shards"] = len(parts)
    return merged


def _sample_span(ds: xr.Dataset) -> str:
    """'a..b (n)' of a dataset's sample index, for messages."""
    s = ds["sample"].values
    return f"{s[0]}..{s[-1]} ({len(s)})" if len(s) else "none"


def fitted_spectra(
    ds: xr.Dataset,
    settings: FitSettings,
    shard: int | None = None,
    n_test: int | None = None,
    method: str | None = None,
) -> xr.Dataset:
    """The part of a test-split dataset (raw spectra or predictions, sample-aligned) that
    ``method`` fits: the first ``settings.spectra`` (``autofit_spectra``), or a shard of
    them."""
    n_test = ds.sizes["sample"] if n_test is None else n_test
    if shard is None:
        return ds.isel(sample=slice(0, settings.n_spectra(n_test, method)))
    start, stop = settings.shard_range(shard, n_test, method)
    return ds.isel(sample=slice(start, stop))
