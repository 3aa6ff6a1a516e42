"""Batched, bounded Levenberg–Marquardt refinement of many spectra at once.

Every spectrum is its own least-squares problem min_y Σ r_i(y)²; all of them advance
together, one Jacobian evaluation (through the batched simulator) and one trial
simulation per iteration for the whole batch.  Steps solve
(JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr (Marquardt's scale-invariant damping) and are projected onto
the parameter box (parameters at a bound that the step would push out are held there and
the step is solved for the others); a step is kept only if it lowers χ², otherwise λ grows
and the step is retried from the same point (no new Jacobian).  Parameters stay inside
[low, high] at every iterate.  A spectrum stops when its relative χ² improvement falls
below ``ftol``, its λ exceeds ``max_damping`` or its iterations run out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .problem import SpectrumFitProblem


@dataclass(frozen=True)
class RefinementResult:
    """Outcome of :func:`refine_levenberg_marquardt` for B spectra.

    Attributes:
        x: best parameters [B, D]; chi2: their χ² [B]; chi2_start: χ² of the start [B].
        n_iterations: LM iterations (Jacobians) [B]; n_simulations: simulated spectra [B].
        converged: stopped by ``ftol`` (not by the iteration or damping limits) [B].
    """

    x: np.ndarray
    chi2: np.ndarray
    chi2_start: np.ndarray
    n_iterations: np.ndarray
    n_simulations: np.ndarray
    converged: np.ndarray


def _step(jac: torch.Tensor, r: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """δ [K, D] solving (JᵀJ + λ diag(JᵀJ)) δ = −Jᵀr per row."""
    jtj = jac.transpose(1, 2) @ jac                                   # [K, D, D]
    g = (jac.transpose(1, 2) @ r[..., None])[..., 0]                  # [K, D]
    diag = torch.diagonal(jtj, dim1=1, dim2=2)
    scale = torch.where(diag > 0, diag, torch.ones_like(diag))        # unconstrained params
    a = jtj + torch.diag_embed(damping[:, None] * scale)
    # tiny Tikhonov term against exactly singular systems (parameters without signal)
    a = a + torch.diag_embed(1e-12 * scale)
    return torch.linalg.solve(a, -g)


def refine_levenberg_marquardt(problem: SpectrumFitProblem, x0: np.ndarray, *,
                               max_iterations: int = 20, ftol: float = 1e-6,
                               initial_damping: float = 1e-2, max_damping: float = 1e8,
                               jacobian: str = "finite-difference",
                               progress: bool = False) -> RefinementResult:
    """Refine the start ``x0`` [B, D] of every spectrum of ``problem``.

    Args:
        problem: the spectra, region of interest, bounds and simulator.
        x0: starting parameters [B, D] (clipped into the bounds), e.g. the MDN means.
        max_iterations: Jacobian evaluations per spectrum at most.
        ftol: stop when an accepted step lowers χ² by less than this fraction.
        initial_damping, max_damping: λ at the start and the λ at which a spectrum gives up.
        jacobian: ``"finite-difference"`` or ``"forward-mode"`` (see
            :meth:`SpectrumFitProblem.jacobian`).
        progress: show a progress bar (iterations) on stderr.
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    b, d = problem.n_spectra, problem.n_parameters
    if x.shape != (b, d):
        raise ValueError(f"x0: expected shape ({b}, {d}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x0: expected finite starting parameters")
    if max_iterations < 1 or ftol < 0 or not 0 < initial_damping <= max_damping:
        raise ValueError("max_iterations >= 1, ftol >= 0 and 0 < initial_damping <= "
                         "max_damping expected")
    x = np.clip(x, problem.low, problem.high)
    sims_before = problem.n_simulations.copy()
    rows = np.arange(b)
    r, jac = problem.jacobian(x, rows, method=jacobian)
    chi2 = (r * r).sum(-1).cpu().numpy()
    chi2_start = chi2.copy()
    damping = torch.full((b,), initial_damping, dtype=problem.dtype, device=problem.device)
    iterations = np.ones(b, dtype=np.int64)
    active = np.ones(b, dtype=bool)
    converged = np.zeros(b, dtype=bool)
    # the Jacobian and residuals at the current point of every active spectrum
    cur_r, cur_j = r, jac
    with tqdm(total=max_iterations, desc="Levenberg–Marquardt", unit="it", file=sys.stderr,
              disable=not progress) as bar:
        bar.update(1)
        while active.any():
            act = np.nonzero(active)[0]
            sel = torch.as_tensor(act, device=problem.device)
            jac_a, r_a, damp_a = cur_j[sel], cur_r[sel], damping[sel]
            delta = _step(jac_a, r_a, damp_a).cpu().numpy()
            # parameters at a bound that the step pushes outwards are held there, and the
            # step is solved again for the others (a projected step would lose its descent)
            held = (((x[act] <= problem.low) & (delta < 0))
                    | ((x[act] >= problem.high) & (delta > 0)))
            if held.any():
                free = torch.as_tensor(~held, dtype=jac_a.dtype, device=problem.device)
                delta = _step(jac_a * free[:, None, :], r_a, damp_a).cpu().numpy()
                delta[held] = 0.0
            trial = np.clip(x[act] + delta, problem.low, problem.high)
            chi2_trial = problem.chi2(trial, act)
            better = chi2_trial < chi2[act]
            gain = np.where(better, (chi2[act] - chi2_trial) / np.maximum(chi2[act], 1e-300),
                            0.0)
            up = torch.as_tensor(better, device=problem.device)
            damping[sel] = torch.where(up, damping[sel] / 3.0, damping[sel] * 4.0)
            acc = act[better]
            x[acc], chi2[acc] = trial[better], chi2_trial[better]
            done_ftol = better & (gain < ftol)
            gave_up = ~better & (damping[sel].cpu().numpy() > max_damping)
            out_of_iterations = better & (iterations[act] >= max_iterations)
            converged[act[done_ftol]] = True
            active[act[done_ftol | gave_up | out_of_iterations]] = False
            # new Jacobians where a step was accepted and the spectrum goes on
            renew = acc[active[acc]]
            if renew.size:
                r_new, j_new = problem.jacobian(x[renew], renew, method=jacobian)
                at = torch.as_tensor(renew, device=problem.device)
                cur_r[at], cur_j[at] = r_new, j_new
                iterations[renew] += 1
            bar.n = int(iterations[active].max()) if active.any() else max_iterations
            bar.refresh()
    return RefinementResult(x=x, chi2=chi2, chi2_start=chi2_start, n_iterations=iterations,
                            n_simulations=problem.n_simulations - sims_before,
                            converged=converged)
