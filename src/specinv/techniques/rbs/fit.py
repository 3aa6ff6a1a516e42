"""Least-squares fit of one measured RBS spectrum, with uncertainties and correlations.

:func:`fit_spectrum` refines the free parameters of an :class:`RBSFitModel` by the batched
Levenberg–Marquardt of :mod:`specinv.fitting` on the channels of a region of interest, and
derives the uncertainties from the Fisher information at the fitted spectrum:

* counts (``relative=False``): Poisson statistics, χ² = Σ (x − s)² / (x + 1) (Muzakka et al.
  2024, eq. 4); the covariance is the inverse Fisher information Σ ∂s ∂sᵀ / s (the
  Cramér–Rao bound at the fitted values), reported unscaled next to the reduced χ²;
* relative counts (normalised spectra, e.g. maximum 1): no counting statistics are known,
  so every channel gets the same weight (ordinary least squares) and the covariance is
  s² (JᵀJ)⁻¹ with s² = Σ r² / ν, the residual variance; the fluence is then just a scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...evaluation.information import fisher_covariance, poisson_fisher_information
from ...fitting.derivatives import spectra_and_jacobian
from ...fitting.levenberg_marquardt import refine_levenberg_marquardt
from ...fitting.problem import SpectrumFitProblem
from .fitmodel import RBSFitModel


@dataclass(frozen=True)
class SpectrumFit:
    """A fitted spectrum.

    Attributes:
        names, units: of the free parameters; values, std: fitted values and standard
            deviations (inf: not determined by the spectrum); correlation [P, P].
        start: the starting values.
        chi2: χ² (relative counts: the residual sum of squares) over the region of interest;
            dof: its channels minus the free parameters; reduced_chi2: chi2 / dof.
        expected: the fitted spectrum [C] (all channels of the model).
        roi: the channels fitted [C].
        converged: Levenberg–Marquardt stopped on its tolerance; iterations; simulations
            (spectra simulated, whole-spectrum equivalents); seconds (wall time of the fit).
        relative: fitted as relative counts (see the module docstring).
    """

    names: list[str]
    units: list[str]
    values: np.ndarray
    std: np.ndarray
    correlation: np.ndarray
    start: np.ndarray
    chi2: float
    dof: int
    expected: np.ndarray
    roi: np.ndarray
    converged: bool
    iterations: int
    simulations: float
    seconds: float
    relative: bool

    @property
    def reduced_chi2(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    def table(self) -> str:
        """The fitted values ± σ, one line each, and χ² (for the terminal)."""
        width = max(len(n) for n in self.names) if self.names else 0
        lines = [
            f"  {name:<{width}}  {value:>13.6g} ± {std:<11.3g} {unit}  (start {start:.6g})"
            for name, value, std, unit, start in zip(
                self.names, self.values, self.std, self.units, self.start, strict=True
            )
        ]
        what = "residual sum of squares" if self.relative else "chi2"
        lines.append(
            f"  {what} {self.chi2:.6g} over {int(self.roi.sum())} channels, dof {self.dof}: "
            f"reduced {self.reduced_chi2:.4f}; "
            f"{'converged' if self.converged else 'NOT converged'} after {self.iterations} "
            f"steps, {self.simulations:.0f} spectra, {self.seconds:.2f} s"
        )
        return "\n".join(lines)


def fit_spectrum(
    model: RBSFitModel,
    counts: np.ndarray,
    roi: np.ndarray,
    *,
    relative: bool = False,
    max_iterations: int = 100,
    ftol: float = 1e-7,
    progress: bool = False,
) -> SpectrumFit:
    """Fit ``counts`` [C] (C = the model's channels) on the channels ``roi`` [C].

    Raises:
        ValueError: counts of the wrong length, negative or not finite; an empty region of
            interest, or fewer channels in it than free parameters.
    """
    counts = np.asarray(counts, dtype=np.float64)
    roi = np.asarray(roi, dtype=bool)
    c = model.n_channels
    if counts.shape != (c,) or roi.shape != (c,):
        raise ValueError(
            f"counts, roi: expected {c} channels (the model's), got {counts.shape} and {roi.shape}"
        )
    n_free = len(model.parameters)
    if roi.sum() <= n_free:
        raise ValueError(
            f"roi: {int(roi.sum())} channels for {n_free} free parameters; expected more "
            f"channels than parameters"
        )
    weights = np.ones((1, c)) if relative else None
    t0 = time.perf_counter()
    problem = SpectrumFitProblem(
        model.simulate,
        counts[None],
        roi,
        model.low,
        model.high,
        dtype=model.dtype,
        device=model.simulator.device,
        weights=weights,
    )
    start = model.start
    if n_free:
        result = refine_levenberg_marquardt(
            problem,
            start[None],
            max_iterations=max_iterations,
            ftol=ftol,
            jacobian="finite-difference",
            progress=progress,
        )
        values = result.x[0]
        converged, steps = bool(result.converged[0]), int(result.n_iterations[0])
    else:
        values, converged, steps = start, True, 0
    chi2 = float(problem.chi2(values[None], [0])[0])
    expected, jac = (
        x[0]
        for x in spectra_and_jacobian(
            model.simulate, values[None], model.low, model.high, dtype=model.dtype
        )
    )
    seconds = time.perf_counter() - t0
    dof = int(roi.sum()) - n_free
    if relative:
        j = jac[roi]
        cov = fisher_covariance(j.T @ j) * (chi2 / max(dof, 1))
    else:
        cov = fisher_covariance(poisson_fisher_information(expected, jac, roi))
    std = np.sqrt(np.diagonal(cov)) if n_free else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = cov / np.outer(std, std)
    return SpectrumFit(
        names=model.names,
        units=[p.unit for p in model.parameters],
        values=np.asarray(values, dtype=np.float64),
        std=std,
        correlation=correlation,
        start=start,
        chi2=chi2,
        dof=dof,
        expected=expected,
        roi=roi,
        converged=converged,
        iterations=steps,
        simulations=float(problem.n_simulations[0]),
        seconds=seconds,
        relative=relative,
    )
