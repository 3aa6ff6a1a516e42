"""Batched, bounded Levenberg–Marquardt refinement of many spectra at once.

Every spectrum is its own least-squares problem min_y Σ r_i(y)²; all of them advance
together, one batched trial simulation per iteration for the whole batch.  Steps solve
(JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr (Marquardt's scale-invariant damping) and are projected onto
the parameter box (parameters at a bound that the step would push out are held there and
the step is solved for the others); a step is kept only if it lowers χ², otherwise λ grows
and the step is retried from the same point.  After an accepted step the Jacobian is
updated by Broyden's rank-one formula from the step's residuals (no simulation); a
failed step made with an updated Jacobian updates it too (the secant condition holds for
any step) and is retried with more damping.  The Jacobian is evaluated afresh (finite
differences: D simulations) when such a retry fails as well, when a step falls well short
of its predicted decrease, after D updates in a row and before a spectrum is declared
converged (as in MINPACK's hybrid methods).  Parameters stay inside [low, high] at every
iterate.  A spectrum stops when its χ² improvement falls below ``ftol`` (relative) or
``chi2_tol`` (absolute) — measured on a step made with a fresh Jacobian, or predicted by a
fresh Jacobian for a nearly undamped step, which then is not simulated — when its λ
exceeds ``max_damping`` or when its steps run out.
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
        n_iterations: accepted LM steps [B]; n_simulations: simulated spectra [B].
        converged: stopped by ``ftol`` (not by the iteration or damping limits) [B].
    """

    x: np.ndarray
    chi2: np.ndarray
    chi2_start: np.ndarray
    n_iterations: np.ndarray
    n_simulations: np.ndarray
    converged: np.ndarray


def _normal_equations(jac: torch.Tensor, r: torch.Tensor):
    """JᵀJ [K, D, D] and Jᵀr [K, D] per row."""
    jt = jac.transpose(1, 2)
    return jt @ jac, (jt @ r[..., None])[..., 0]


def _step(jtj: torch.Tensor, g: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """δ [K, D] solving (JᵀJ + λ diag(JᵀJ)) δ = −Jᵀr per row."""
    diag = torch.diagonal(jtj, dim1=1, dim2=2)
    scale = torch.where(diag > 0, diag, torch.ones_like(diag))  # unconstrained params
    # tiny Tikhonov term against exactly singular systems (parameters without signal)
    a = jtj + torch.diag_embed((damping[:, None] + 1e-12) * scale)
    return torch.linalg.solve(a, -g)


def refine_levenberg_marquardt(
    problem: SpectrumFitProblem,
    x0: np.ndarray,
    *,
    max_iterations: int = 20,
    ftol: float = 1e-6,
    chi2_tol: float = 0.0,
    initial_damping: float = 1e-2,
    max_damping: float = 1e8,
    jacobian: str = "finite-difference",
    broyden: bool = True,
    broyden_retries: int = 1,
    progress: bool = False,
) -> RefinementResult:
    """Refine the start ``x0`` [B, D] of every spectrum of ``problem``.

    Args:
        problem: the spectra, region of interest, bounds and simulator.
        x0: starting parameters [B, D] (clipped into the bounds), e.g. the MDN means.
        max_iterations: accepted steps per spectrum at most.
        ftol: stop when an accepted step lowers χ² by less than this fraction.
        chi2_tol: or by less than this absolute amount (Δχ² = 1 is a one-σ change of a
            parameter: a last step that gains less than 0.1 moved the parameters by less
            than ~0.3 σ, and near the minimum what is left after it is smaller still).
        initial_damping, max_damping: λ at the start and the λ at which a spectrum gives up.
        jacobian: ``"finite-difference"`` or ``"forward-mode"`` (see
            :meth:`SpectrumFitProblem.jacobian`).
        broyden: after an accepted step, update the Jacobian by Broyden's rank-one formula
            (from the residuals of the step, no simulation) instead of evaluating it again;
            it is evaluated afresh when a step with an updated Jacobian fails more than
            ``broyden_retries`` times in a row, when a step achieves less than a quarter of
            the χ² decrease its linear model predicted, after D updates in a row, and before
            a spectrum is declared converged.  False: a new Jacobian after every accepted
            step.
        broyden_retries: failed steps with an updated Jacobian that only update it (from
            the failed step's residuals) and retry with more damping, before it is evaluated
            afresh (MINPACK's hybrid methods: 1).  On dataset B of the paper (15
            parameters) one retry saves ~15 % of the simulations; 0: evaluate at once.
        progress: show a progress bar (iterations) on stderr.
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    b, d = problem.n_spectra, problem.n_parameters
    if x.shape != (b, d):
        raise ValueError(f"x0: expected shape ({b}, {d}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x0: expected finite starting parameters")
    if (
        max_iterations < 1
        or ftol < 0
        or chi2_tol < 0
        or broyden_retries < 0
        or not 0 < initial_damping <= max_damping
    ):
        raise ValueError(
            "max_iterations >= 1, ftol >= 0, chi2_tol >= 0, broyden_retries "
            ">= 0 and 0 < initial_damping <= max_damping expected"
        )
    x = np.clip(x, problem.low, problem.high)
    sims_before = problem.n_simulations.copy()
    rows = np.arange(b)
    cur_r, cur_j = problem.jacobian(x, rows, method=jacobian)
    chi2 = (cur_r * cur_r).sum(-1).cpu().numpy()
    chi2_start = chi2.copy()
    damping = torch.full((b,), initial_damping, dtype=problem.dtype, device=problem.device)
    steps = np.zeros(b, dtype=np.int64)  # accepted steps
    fresh = np.ones(b, dtype=bool)  # Jacobian evaluated (not updated) at x
    updates = np.zeros(b, dtype=np.int64)  # Broyden updates since the last evaluation
    failures = np.zeros(b, dtype=np.int64)  # failed steps in a row with an updated one
    active = np.ones(b, dtype=bool)
    converged = np.zeros(b, dtype=bool)
    with tqdm(
        total=max_iterations,
        desc="Levenberg–Marquardt",
        unit="it",
        file=sys.stderr,
        disable=not progress,
    ) as bar:
        while active.any():
            act = np.nonzero(active)[0]
            sel = torch.as_tensor(act, device=problem.device)
            if len(act) == b:  # all spectra still going: no copies
                jac_a, r_a, damp_a = cur_j, cur_r, damping
            else:
                jac_a, r_a, damp_a = (t.index_select(0, sel) for t in (cur_j, cur_r, damping))
            jtj, g = _normal_equations(jac_a, r_a)
            delta = _step(jtj, g, damp_a).cpu().numpy()
            # parameters at a bound that the step pushes outwards are held there, and the
            # step is solved again for the others (a projected step would lose its descent)
            held = ((x[act] <= problem.low) & (delta < 0)) | (
                (x[act] >= problem.high) & (delta > 0)
            )
            if held.any():
                free = torch.as_tensor(~held, dtype=jac_a.dtype, device=problem.device)
                both = free[:, :, None] * free[:, None, :]
                delta = _step(jtj * both, g * free, damp_a).cpu().numpy()
                delta[held] = 0.0
            trial = np.clip(x[act] + delta, problem.low, problem.high)
            step = torch.as_tensor(trial - x[act], dtype=problem.dtype, device=problem.device)
            # decrease of χ² that the linear model predicts for the step, where
            # |r + J s|² = χ² + 2 sᵀJᵀr + sᵀJᵀJ s
            predicted = (
                -(2.0 * (step * g).sum(-1) + (step[:, None, :] @ jtj @ step[..., None])[:, 0, 0])
                .cpu()
                .numpy()
            )
            # with a true Jacobian and little damping (the step is nearly Gauss–Newton's),
            # a predicted decrease below the tolerances means the spectrum is at its
            # minimum: it stops without simulating the step
            at_minimum = (
                fresh[act]
                & (damp_a.cpu().numpy() <= initial_damping)
                & (predicted >= 0.0)
                & ((predicted < chi2_tol) | (predicted < ftol * chi2[act]))
            )
            if at_minimum.any():
                converged[act[at_minimum]] = True
                active[act[at_minimum]] = False
                keep = ~at_minimum
                if not keep.any():
                    continue
                kt = torch.as_tensor(np.nonzero(keep)[0], device=problem.device)
                act, sel = act[keep], sel.index_select(0, kt)
                jac_a, r_a, jtj, g, step = (
                    t.index_select(0, kt) for t in (jac_a, r_a, jtj, g, step)
                )
                trial, predicted = trial[keep], predicted[keep]
            with torch.no_grad():
                r_trial = problem.residuals(trial, act)
            chi2_trial = (r_trial * r_trial).sum(-1).cpu().numpy().astype(np.float64)
            better = chi2_trial < chi2[act]
            drop = np.where(better, chi2[act] - chi2_trial, 0.0)
            gain = drop / np.maximum(chi2[act], 1e-300)
            up = torch.as_tensor(better, device=problem.device)
            damping[sel] = torch.where(up, damping[sel] / 3.0, damping[sel] * 4.0)
            # quality of the linear model: actual over predicted decrease
            poor = better & (drop < 0.25 * np.maximum(predicted, 1e-300))
            acc = act[better]
            x[acc], chi2[acc] = trial[better], chi2_trial[better]
            steps[acc] += 1
            # a small improvement only ends the refinement when it was made with a true
            # Jacobian; after Broyden updates the Jacobian is evaluated afresh first
            small = better & ((gain < ftol) | (drop < chi2_tol))
            done = small & fresh[act]
            gave_up = ~better & fresh[act] & (damping[sel].cpu().numpy() > max_damping)
            out_of_iterations = better & (steps[act] >= max_iterations)
            converged[act[done]] = True
            active[act[done | gave_up | out_of_iterations]] = False
            going = active[act]
            # Jacobians for the next step: a rank-one (Broyden) update after an accepted step
            # and after the first ``broyden_retries`` failures of an updated Jacobian;
            # evaluated afresh where it failed more often, where the improvement was small or
            # poorly predicted, or everywhere without Broyden updates
            stale = updates[act] >= d  # D updates in a row: evaluate afresh
            retry = going & ~better & ~fresh[act] & ~stale & (failures[act] < broyden_retries)
            refresh = going & (
                (better & (small | poor | stale | (not broyden))) | (~better & ~fresh[act] & ~retry)
            )
            update = going & ((better & ~refresh) | retry)
            failures[act[retry]] += 1
            failures[act[better | refresh]] = 0
            if update.any():
                k = torch.as_tensor(np.nonzero(update)[0], device=problem.device)
                at = sel[k]
                dk = step[k]
                mismatch = r_trial[k] - r_a[k] - (jac_a.index_select(0, k) @ dk[..., None])[..., 0]
                norm2 = (dk * dk).sum(-1).clamp_min(1e-300)
                cur_j.index_add_(0, at, mismatch[..., None] * (dk / norm2[:, None])[:, None, :])
                moved = torch.as_tensor(np.nonzero(update & better)[0], device=problem.device)
                cur_r.index_copy_(0, sel[moved], r_trial[moved])  # retries stay put
                fresh[act[update]] = False
                updates[act[update]] += 1
            if refresh.any():
                k = np.nonzero(refresh)[0]
                kt = torch.as_tensor(k, device=problem.device)
                base = torch.where(
                    torch.as_tensor(better[k], device=problem.device)[:, None],
                    r_trial[kt],
                    cur_r[sel[kt]],
                )
                r_new, j_new = problem.jacobian(
                    x[act[k]],
                    act[k],
                    method=jacobian,
                    base=base if jacobian == "finite-difference" else None,
                )
                cur_r.index_copy_(0, sel[kt], r_new)
                cur_j.index_copy_(0, sel[kt], j_new)
                fresh[act[k]] = True
                updates[act[k]] = 0
            bar.n = int(steps[active].max()) if active.any() else max_iterations
            bar.refresh()
    return RefinementResult(
        x=x,
        chi2=chi2,
        chi2_start=chi2_start,
        n_iterations=steps,
        n_simulations=problem.n_simulations - sims_before,
        converged=converged,
    )
