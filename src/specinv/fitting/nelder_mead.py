"""Batched, lockstep Nelder–Mead: many independent minimisations sharing one objective call.

:func:`minimize_batched` runs ``B`` independent minimisations of ``D`` parameters each with
SciPy's *adaptive* Nelder–Mead (``scipy.optimize.minimize(..., method="Nelder-Mead",
options=dict(adaptive=True, ...))``), optionally with restarts. Instead of a scalar function,
it takes a *batched* objective ``objective(points [K, D], problem [K]) -> values [K]`` that
evaluates ``f_{problem[k]}(points[k])`` for every row ``k``; all points that are pending in one
simplex phase, over all problems, go into a single call. This makes it affordable to fit
thousands of spectra with a vectorised forward simulator.

Each problem follows exactly SciPy's algorithm (``scipy.optimize._optimize._minimize_neldermead``
in SciPy 1.17): the same initial simplex, the same coefficients, clipping to bounds, order of
operations, floating-point expressions, sorting, convergence test, evaluation counting and
behaviour when the evaluation budget runs out in the middle of an iteration. For a
deterministic objective the iterates are bit-identical to SciPy's, problem by problem.
"""

from __future__ import annotations

import operator
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning

__all__ = ["BatchedNelderMeadResult", "BatchedObjective", "minimize_batched"]

BatchedObjective = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``objective(points [K, D] float64, problem [K] int64) -> values [K] float64``."""

# SciPy's initial-simplex steps: relative for non-zero components, absolute for zeros.
_NONZDELT = 0.05
_ZDELT = 0.00025

# Per-problem phases of the state machine. A problem is in exactly one phase at the start of
# a round; the phase says which evaluation(s) it contributes to the round's objective call.
_INIT = 0  # new run: evaluate the initial simplex (up to N + 1 points)
_ITER = 1  # start of an NM iteration: budget and convergence tests, then the reflection
_REFLECT = 2  # evaluate the reflected point
_EXPAND = 3  # evaluate the expanded point
_CONTRACT_OUT = 4  # evaluate the outside contraction
_CONTRACT_IN = 5  # evaluate the inside contraction
_SHRINK = 6  # evaluate the N shrunk vertices
_DONE = 7


@dataclass(frozen=True)
class BatchedNelderMeadResult:
    """Outcome of :func:`minimize_batched` for ``B`` problems of dimension ``D``.

    Attributes:
        x: Best point of each problem, ``[B, D]`` (SciPy's ``res.x`` of the last run).
        fun: Objective value there, ``[B]`` (SciPy's ``res.fun`` of the last run, i.e. the
            minimum of the final simplex values).
        n_evaluations: Objective evaluations spent on each problem, ``[B]`` int, summed over
            runs; never more than ``max_evaluations``.
        n_iterations: Nelder–Mead iterations of each problem, ``[B]`` int, the sum of SciPy's
            ``res.nit`` over the runs (SciPy counts from 1 in each run).
        n_restarts: Number of restarts of each problem, ``[B]`` int (runs minus one).
        converged: Whether the last run of each problem ended by SciPy's convergence test
            (``xatol`` and ``fatol``), ``[B]`` bool; False where the budget ran out.
        n_objective_calls: Number of times the batched objective was called.
        history: If requested, the best simplex value of each problem after each round,
            ``[n_rounds, B]`` (``inf`` before a problem's first evaluation); else None.
    """

    x: np.ndarray
    fun: np.ndarray
    n_evaluations: np.ndarray
    n_iterations: np.ndarray
    n_restarts: np.ndarray
    converged: np.ndarray
    n_objective_calls: int
    history: np.ndarray | None = None


def _as_count(value: Any, name: str) -> int:
    """Return ``value`` as a positive Python int, or raise ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError as error:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from error
    if count < 1:
        raise ValueError(f"{name} must be a positive integer, got {count}")
    return count


def _as_tolerance(value: Any, name: str) -> float:
    """Return ``value`` as a float that is not NaN, or raise ValueError naming ``name``."""
    try:
        tolerance = float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a real number, got {value!r}") from error
    if np.isnan(tolerance):
        raise ValueError(f"{name} must not be NaN")
    return tolerance


def _validate_bounds(
    bounds: Any, n_problems: int, n_dim: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Broadcast ``bounds = (low, high)`` to two ``[B, D]`` float64 arrays and check them."""
    if bounds is None:
        return None
    try:
        low, high = bounds
    except (TypeError, ValueError) as error:
        raise ValueError("bounds must be None or a pair (low, high)") from error
    arrays = []
    for name, value in (("low", low), ("high", high)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"bounds {name} must be a numeric array") from error
        if array.shape not in ((n_dim,), (n_problems, n_dim)):
            raise ValueError(
                f"bounds {name} must have shape [D] = ({n_dim},) or [B, D] = "
                f"({n_problems}, {n_dim}), got {array.shape}"
            )
        if np.isnan(array).any():
            raise ValueError(f"bounds {name} contains NaN")
        arrays.append(np.broadcast_to(array, (n_problems, n_dim)))
    low_b, high_b = arrays
    if not (low_b < high_b).all():
        problem, dim = np.argwhere(~(low_b < high_b))[0]
        raise ValueError(
            "bounds must satisfy low < high, but low >= high for problem "
            f"{problem}, parameter {dim} ({low_b[problem, dim]} >= {high_b[problem, dim]})"
        )
    return low_b, high_b


def _initial_simplex(x0: np.ndarray, low: np.ndarray | None, high: np.ndarray | None):
    """SciPy's default initial simplex for each row of ``x0`` ``[G, N]``: ``[G, N + 1, N]``.

    Vertex ``k + 1`` is ``x0`` with component ``k`` multiplied by 1.05 (set to 0.00025 if it
    is zero). With bounds, components above the upper bound are reflected into the interior
    and the result clipped to the bounds, as SciPy does.
    """
    n_dim = x0.shape[1]
    sim = np.repeat(x0[:, None, :], n_dim + 1, axis=1)
    k = np.arange(n_dim)
    sim[:, k + 1, k] = np.where(x0 != 0, (1 + _NONZDELT) * x0, _ZDELT)
    if low is not None:
        upper = high[:, None, :]
        msk = sim > upper
        sim = np.where(msk, 2 * upper - sim, sim)
        sim = np.clip(sim, low[:, None, :], upper)
    return sim


def _make_progress(progress: Any, total: int) -> tuple[Any, bool]:
    """The progress bar to update (or None) and whether this module owns (closes) it."""
    if progress is None or progress is False:
        return None, False
    if progress is True:
        from tqdm import tqdm

        return tqdm(total=total, file=sys.stderr, unit="eval", desc="Nelder-Mead"), True
    if not hasattr(progress, "update"):
        raise ValueError("progress must be a bool or a tqdm-like object with an update() method")
    return progress, False


def minimize_batched(
    objective: BatchedObjective,
    x0: Any,
    *,
    bounds: tuple[Any, Any] | None = None,
    max_evaluations: int | None = None,
    restart_every: int | None = None,
    xatol: float = 1e-4,
    fatol: float = 1e-4,
    progress: Any = False,
    record_history: bool = False,
) -> BatchedNelderMeadResult:
    """Minimise ``B`` independent functions at once with SciPy's adaptive Nelder–Mead.

    Problem ``b`` minimises ``f_b(x) = objective(x[None], np.array([b]))[0]``, starting from
    ``x0[b]``. Without restarts this is, for every problem, exactly::

        scipy.optimize.minimize(f_b, x0[b], method="Nelder-Mead", bounds=Bounds(low, high),
                                options=dict(adaptive=True, maxfev=max_evaluations,
                                             xatol=xatol, fatol=fatol))

    (bit-identical iterates, ``x``, ``fun``, ``nfev`` and ``nit`` for a deterministic
    objective; ``maxiter`` is SciPy's default when only ``maxfev`` is given, i.e. unlimited).

    **Batching.** Every problem is a small state machine (new run: initial simplex; start of an
    iteration; reflection; expansion; outside or inside contraction; shrink). In each *round*
    each unfinished problem contributes the point(s) its current phase needs -- ``N + 1`` for
    an initial simplex, one for a reflection, expansion or contraction, ``N`` for a shrink --
    and all of them go into **one** objective call; then every problem advances. An NM
    iteration takes one to three rounds, so the number of calls is of the order of the
    number of iterations of the slowest problem, independent of ``B``. Problems are in
    different phases (and runs) at the same time; their states are independent.

    **Budget.** SciPy's evaluation counter refuses any evaluation beyond ``maxfev`` (it never
    overshoots): when the budget runs out inside an iteration, the rest of that iteration is
    skipped (a pending expansion or contraction is not made; in a shrink the vertices already
    evaluated are kept and the next vertex is moved but keeps its old value, as in SciPy),
    the simplex is sorted and the run stops without counting the iteration. The same happens
    here, so a run never exceeds its ``maxfev`` and the total never exceeds
    ``max_evaluations``.

    **Restarts** (the paper's "Autofit"). With ``restart_every``, a problem runs
    SciPy's NM repeatedly: each run has ``maxfev = min(restart_every, remaining budget)`` and
    starts with a fresh initial simplex around the previous run's result ``x`` (SciPy's
    ``res.x``, the best vertex of its final simplex, whose value is never worse than that of
    the run's start point). A problem is finished when its total budget ``max_evaluations``
    is spent, or when a run ends by SciPy's convergence test (a converged run is not
    restarted). This is the same as calling SciPy in a loop from the previous ``res.x``
    until ``res.status == 0`` or the budget is gone. Each run re-evaluates its start point, as
    SciPy does.

    **Bounds.** As in SciPy, ``x0`` outside the bounds is clipped into them with an
    :class:`~scipy.optimize.OptimizeWarning`; initial-simplex components above the upper bound
    are reflected into the interior, then clipped; every trial point is clipped to the
    bounds. Infinite bounds mean "unbounded" for that parameter.

    Args:
        objective: Batched objective ``objective(points [K, D], problem [K]) -> [K]``:
            returns ``f_{problem[k]}(points[k])`` (float64; ``inf``/NaN are allowed and
            treated like SciPy does). It receives fresh arrays it may modify.
        x0: Start points ``[B, D]`` (finite).
        bounds: None, or ``(low, high)`` with each ``[D]`` or ``[B, D]``, ``low < high``
            elementwise (``-inf``/``inf`` allowed).
        max_evaluations: Total evaluation budget per problem; None means SciPy's default
            ``200 * D``.
        restart_every: Maximum evaluations of one run; None means a single run.
        xatol: Absolute tolerance on the simplex's extent in ``x`` (SciPy's ``xatol``).
        fatol: Absolute tolerance on the spread of its values (SciPy's ``fatol``).
        progress: True for a tqdm bar on stderr counting evaluations, or an existing tqdm-like
            object to ``update()`` (not closed here); False (default) for none.
        record_history: Whether to store the best simplex value of each problem after every
            round in :attr:`BatchedNelderMeadResult.history` (``n_rounds * B`` floats).

    Returns:
        A :class:`BatchedNelderMeadResult`.

    Raises:
        ValueError: If an argument has the wrong shape or type, ``x0`` is not finite, bounds
            contain NaN or have ``low >= high``, or the objective returns the wrong shape.
    """
    if not callable(objective):
        raise ValueError("objective must be callable")
    try:
        x0 = np.array(x0, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError("x0 must be a numeric array of shape [B, D]") from error
    if x0.ndim != 2 or x0.shape[0] < 1 or x0.shape[1] < 1:
        raise ValueError(f"x0 must have shape [B, D] with B, D >= 1, got {x0.shape}")
    if not np.isfinite(x0).all():
        raise ValueError("x0 must be finite (it contains NaN or inf)")
    n_problems, n_dim = x0.shape
    checked_bounds = _validate_bounds(bounds, n_problems, n_dim)
    budget = (
        200 * n_dim if max_evaluations is None else _as_count(max_evaluations, "max_evaluations")
    )
    run_limit = budget if restart_every is None else _as_count(restart_every, "restart_every")
    xatol = _as_tolerance(xatol, "xatol")
    fatol = _as_tolerance(fatol, "fatol")

    low = high = None
    if checked_bounds is not None:
        low, high = checked_bounds
        if (low > x0).any() or (x0 > high).any():
            warnings.warn(
                "Initial guess is not within the specified bounds", OptimizeWarning, stacklevel=2
            )
        x0 = np.clip(x0, low, high)

    # SciPy's adaptive coefficients (same Python scalars, hence same rounding).
    dim = float(n_dim)
    rho = 1
    chi = 1 + 2 / dim
    psi = 0.75 - 1 / (2 * dim)
    sigma = 1 - 1 / dim
    n = n_dim

    # Per-problem state.
    sim = np.empty((n_problems, n + 1, n))
    fsim = np.full((n_problems, n + 1), np.inf)
    phase = np.full(n_problems, _INIT, dtype=np.int64)
    start = x0.copy()  # start point of the current run
    xbar = np.empty((n_problems, n))  # centroid of the current iteration
    x_reflect = np.empty((n_problems, n))
    f_reflect = np.empty(n_problems)
    trial = np.empty((n_problems, n))  # pending expansion / contraction point
    run_fev = np.zeros(n_problems, dtype=np.int64)
    run_maxfev = np.full(n_problems, min(run_limit, budget), dtype=np.int64)
    run_nit = np.ones(n_problems, dtype=np.int64)
    total_fev = np.zeros(n_problems, dtype=np.int64)
    total_nit = np.zeros(n_problems, dtype=np.int64)
    n_runs = np.ones(n_problems, dtype=np.int64)
    converged = np.zeros(n_problems, dtype=bool)
    best_x = x0.copy()
    best_f = np.full(n_problems, np.inf)
    current_best = np.full(n_problems, np.inf)
    history: list[np.ndarray] = []
    n_calls = 0

    def clip(points: np.ndarray, idx: np.ndarray) -> np.ndarray:
        if low is None:
            return points
        if points.ndim == 3:
            return np.clip(points, low[idx, None, :], high[idx, None, :])
        return np.clip(points, low[idx], high[idx])

    def sort(idx: np.ndarray) -> None:
        # SciPy: ind = np.argsort(fsim); sim = np.take(sim, ind, 0); fsim = np.take(fsim, ...).
        # argsort along the last axis sorts every row with the same kernel as a 1-D argsort,
        # so ties are ordered identically.
        if idx.size == 0:
            return
        f = fsim[idx]
        ind = np.argsort(f, axis=1)
        fsim[idx] = np.take_along_axis(f, ind, axis=1)
        sim[idx] = np.take_along_axis(sim[idx], ind[:, :, None], axis=1)
        current_best[idx] = fsim[idx, 0]

    bar, own_bar = _make_progress(progress, n_problems * budget)
    try:
        while True:
            # --- Start of an iteration: SciPy's while-condition and convergence test. ---
            idx = np.flatnonzero(phase == _ITER)
            if idx.size:
                s = sim[idx]
                f = fsim[idx]
                out_of_budget = run_fev[idx] >= run_maxfev[idx]
                with np.errstate(invalid="ignore"):
                    x_ok = np.max(np.abs(s[:, 1:] - s[:, :1]).reshape(idx.size, -1), axis=1)
                    f_ok = np.max(np.abs(f[:, :1] - f[:, 1:]), axis=1)
                is_converged = ~out_of_budget & (x_ok <= xatol) & (f_ok <= fatol)
                ended = out_of_budget | is_converged
                # Runs that end: record SciPy's result, then restart or finish.
                done = idx[ended]
                if done.size:
                    best_x[done] = sim[done, 0]
                    best_f[done] = np.min(fsim[done], axis=1)
                    total_nit[done] += run_nit[done]
                    converged[done] = is_converged[ended]
                    remaining = budget - total_fev[done]
                    again = ~converged[done] & (remaining > 0)
                    phase[done[~again]] = _DONE
                    restart = done[again]
                    start[restart] = sim[restart, 0]
                    run_maxfev[restart] = np.minimum(run_limit, remaining[again])
                    run_fev[restart] = 0
                    run_nit[restart] = 1
                    n_runs[restart] += 1
                    fsim[restart] = np.inf
                    phase[restart] = _INIT
                # Runs that go on: reflection.
                go = idx[~ended]
                if go.size:
                    s = sim[go]
                    centroid = np.add.reduce(s[:, :-1], 1) / n
                    xr = (1 + rho) * centroid - rho * s[:, -1]
                    xbar[go] = centroid
                    x_reflect[go] = clip(xr, go)
                    phase[go] = _REFLECT

            if not (phase != _DONE).any():
                break

            # --- Collect this round's points. ---
            chunks: list[np.ndarray] = []
            owners: list[np.ndarray] = []

            init = np.flatnonzero(phase == _INIT)
            if init.size:
                sim[init] = _initial_simplex(
                    start[init],
                    None if low is None else low[init],
                    None if high is None else high[init],
                )
                n_init = np.minimum(n + 1, run_maxfev[init] - run_fev[init])
                init_mask = np.arange(n + 1)[None, :] < n_init[:, None]
                chunks.append(sim[init][init_mask])
                owners.append(np.repeat(init, n_init))

            reflect = np.flatnonzero(phase == _REFLECT)
            if reflect.size:  # the start-of-iteration test guarantees budget for it
                chunks.append(x_reflect[reflect])
                owners.append(reflect)

            second = np.flatnonzero(
                (phase == _EXPAND) | (phase == _CONTRACT_OUT) | (phase == _CONTRACT_IN)
            )
            second_ok = run_fev[second] < run_maxfev[second]
            if second_ok.any():
                chunks.append(trial[second[second_ok]])
                owners.append(second[second_ok])

            shrink = np.flatnonzero(phase == _SHRINK)
            if shrink.size:
                s = sim[shrink]
                shrunk = clip(s[:, :1] + sigma * (s[:, 1:] - s[:, :1]), shrink)  # [G, N, N]
                n_shrink = np.minimum(n, run_maxfev[shrink] - run_fev[shrink])
                shrink_mask = np.arange(n)[None, :] < n_shrink[:, None]
                chunks.append(shrunk[shrink_mask])
                owners.append(np.repeat(shrink, n_shrink))

            # --- One objective call for everything pending. ---
            values = np.empty(0)
            if chunks:
                points = np.concatenate(chunks, axis=0)
                problem = np.concatenate(owners).astype(np.int64, copy=False)
                if problem.size:
                    values = np.asarray(objective(points, problem.copy()), dtype=np.float64)
                    if values.shape != (problem.size,):
                        raise ValueError(
                            f"objective must return an array of shape ({problem.size},) for "
                            f"{problem.size} points, got shape {values.shape}"
                        )
                    n_calls += 1
                    counts = np.bincount(problem, minlength=n_problems)
                    run_fev += counts
                    total_fev += counts
                    if bar is not None:
                        bar.update(int(problem.size))
            offset = 0

            # --- Advance every problem with its results (same order as collected). ---
            if init.size:
                size = int(n_init.sum())
                f = np.full((init.size, n + 1), np.inf)
                f[init_mask] = values[offset : offset + size]
                offset += size
                fsim[init] = f
                # SciPy sorts twice after the initial simplex (in `finally` and after it).
                sort(init)
                sort(init)
                phase[init] = _ITER

            if reflect.size:
                fxr = values[offset : offset + reflect.size]
                offset += reflect.size
                f_reflect[reflect] = fxr
                s = sim[reflect]
                f = fsim[reflect]
                centroid = xbar[reflect]
                expand = fxr < f[:, 0]
                accept = ~expand & (fxr < f[:, -2])
                outside = ~expand & ~accept & (fxr < f[:, -1])
                inside = ~expand & ~accept & ~outside

                sel = reflect[expand]
                if sel.size:
                    xe = (1 + rho * chi) * centroid[expand] - rho * chi * s[expand, -1]
                    trial[sel] = clip(xe, sel)
                    phase[sel] = _EXPAND
                sel = reflect[outside]
                if sel.size:
                    xc = (1 + psi * rho) * centroid[outside] - psi * rho * s[outside, -1]
                    trial[sel] = clip(xc, sel)
                    phase[sel] = _CONTRACT_OUT
                sel = reflect[inside]
                if sel.size:
                    xcc = (1 - psi) * centroid[inside] + psi * s[inside, -1]
                    trial[sel] = clip(xcc, sel)
                    phase[sel] = _CONTRACT_IN
                sel = reflect[accept]
                if sel.size:
                    sim[sel, -1] = x_reflect[sel]
                    fsim[sel, -1] = fxr[accept]
                    run_nit[sel] += 1
                    sort(sel)
                    phase[sel] = _ITER

            if second.size:
                evaluated = second[second_ok]
                fx = values[offset : offset + evaluated.size]
                offset += evaluated.size
                # Budget gone before this evaluation: SciPy skips the rest of the iteration
                # (no replacement, iteration not counted), sorts and stops the run.
                skipped = second[~second_ok]
                sort(skipped)
                phase[skipped] = _ITER

                kind = phase[evaluated]
                fxr = f_reflect[evaluated]
                worst = fsim[evaluated, -1]
                is_expand = kind == _EXPAND
                take_trial = (
                    (is_expand & (fx < fxr))
                    | ((kind == _CONTRACT_OUT) & (fx <= fxr))
                    | ((kind == _CONTRACT_IN) & (fx < worst))
                )
                take_reflect = is_expand & ~take_trial
                to_shrink = ~is_expand & ~take_trial

                sel = evaluated[take_trial]
                sim[sel, -1] = trial[sel]
                fsim[sel, -1] = fx[take_trial]
                sel = evaluated[take_reflect]
                sim[sel, -1] = x_reflect[sel]
                fsim[sel, -1] = f_reflect[sel]
                finished = evaluated[~to_shrink]
                run_nit[finished] += 1
                sort(finished)
                phase[finished] = _ITER
                phase[evaluated[to_shrink]] = _SHRINK

            if shrink.size:
                size = int(n_shrink.sum())
                f = fsim[shrink, 1:]
                f[shrink_mask] = values[offset : offset + size]
                offset += size
                # SciPy moves vertex j before evaluating it: when the budget runs out, the
                # first vertex that could not be evaluated is moved but keeps its old value.
                moved = np.arange(n)[None, :] < (n_shrink + 1)[:, None]
                s = sim[shrink]
                s[:, 1:][moved] = shrunk[moved]
                sim[shrink] = s
                fsim[shrink, 1:] = f
                run_nit[shrink[n_shrink == n]] += 1
                sort(shrink)
                phase[shrink] = _ITER

            if record_history:
                history.append(current_best.copy())
    finally:
        if own_bar:
            bar.close()

    return BatchedNelderMeadResult(
        x=best_x,
        fun=best_f,
        n_evaluations=total_fev,
        n_iterations=total_nit,
        n_restarts=n_runs - 1,
        converged=converged,
        n_objective_calls=n_calls,
        history=np.array(history).reshape(-1, n_problems) if record_history else None,
    )
