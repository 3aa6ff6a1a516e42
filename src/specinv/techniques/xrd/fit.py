"""Fitting one measured diffraction curve: Levenberg–Marquardt in log intensity through the
differentiable forward model (the classical analysis, as RaDMaX's least squares, from a
start given by the user or by a network).

The residuals are the technique's fit statistic (``log10``, see
:class:`~specinv.fitting.problem.SpectrumFitProblem`): log10(measured + f) − log10(model + f),
unweighted (every decade of the curve counts alike, as in RaDMaX), with f half the smallest
positive measured intensity so that empty points stay finite; the parameters stay inside
the technique's prior box.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...config.errors import ConfigError
from ...fitting.levenberg_marquardt import refine_levenberg_marquardt
from ...fitting.problem import SpectrumFitProblem
from .curves import MeasuredCurve
from .technique import XRDTechnique

#: relative deviation of a measured grid from uniform steps that is still accepted
GRID_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CurveFit:
    """The outcome of :func:`fit_curve`: ``params`` [D] (and the ``start``), the model on the
    curve's grid, the rms of Δlog10 I at the start and at the end, LM iterations and
    simulated curves."""

    params: np.ndarray
    start: np.ndarray
    fitted: np.ndarray
    rms_log10: float
    rms_log10_start: float
    iterations: int
    simulations: float


def technique_for_curve(
    section: Mapping[str, Any], curve: MeasuredCurve, coordinate: str = "two_theta_deg"
) -> XRDTechnique:
    """The technique of an ``xrd`` section (validated, defaults filled) on the angle grid of
    a measured curve (``coordinate``: what its first column is).

    Raises:
        ConfigError: the curve's angles are not uniformly spaced (resample it first).
    """
    steps = np.diff(curve.angle_deg)
    step = (curve.angle_deg[-1] - curve.angle_deg[0]) / (len(curve) - 1)
    if np.max(np.abs(steps - step)) > GRID_TOLERANCE * step:
        raise ConfigError(
            f"{curve.source}: angle steps from {steps.min():.6g} to {steps.max():.6g} deg; "
            "expected a uniform grid (resample the curve)"
        )
    axis = {
        "coordinate": coordinate,
        "start": float(curve.angle_deg[0]),
        "stop": float(curve.angle_deg[-1]),
        "points": len(curve),
    }
    return XRDTechnique({**section, "axis": axis})


def fit_curve(
    technique: XRDTechnique,
    intensity: np.ndarray,
    start: np.ndarray,
    *,
    max_iterations: int = 100,
) -> CurveFit:
    """Fit parameters [D] to a measured curve ``intensity`` [points] of ``technique``'s grid,
    from ``start`` [D] (clipped into the prior box)."""
    x = np.asarray(intensity, dtype=np.float64)
    if x.shape != (technique.n_channels,):
        raise ValueError(f"intensity: expected {technique.n_channels} points, got {x.shape}")
    if not (x > 0).any():
        raise ValueError("intensity: every point is zero")
    low, high = technique.bounds()
    margin = 1e-9 * (high - low)
    x0 = np.clip(np.asarray(start, dtype=np.float64), low + margin, high - margin)
    problem = SpectrumFitProblem(
        technique.simulate,
        x[None],
        None,
        low,
        high,
        batch_size=64,
        dtype=technique.dtype,
        device=technique.device,
        statistic=technique.fit_statistic,
    )
    result = refine_levenberg_marquardt(problem, x0[None], max_iterations=max_iterations)
    with torch.no_grad():
        fitted = technique.simulate(torch.as_tensor(result.x[0])).cpu().numpy()
    n = technique.n_channels
    return CurveFit(
        params=result.x[0],
        start=x0,
        fitted=fitted,
        rms_log10=float(np.sqrt(result.chi2[0] / n)),
        rms_log10_start=float(np.sqrt(result.chi2_start[0] / n)),
        iterations=int(result.n_iterations[0]),
        simulations=float(result.n_simulations[0]),
    )
