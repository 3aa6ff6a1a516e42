"""Batched lockstep Nelder–Mead: bit-identical to SciPy's adaptive Nelder–Mead per problem."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import Bounds, OptimizeWarning, minimize

from specinv.fitting import BatchedNelderMeadResult, minimize_batched

Scalar = Callable[[np.ndarray], float]


# --- test functions (scalar; the batched objective loops over rows, so values are exact) ---


def rosenbrock(b: int) -> Scalar:
    scale, shift = 1.0 + 0.3 * b, 0.1 * b

    def f(x: np.ndarray) -> float:
        return float(np.sum(scale * 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2) + shift)

    return f


def quartic(b: int) -> Scalar:
    scale, centre = 1.0 + 0.3 * b, 0.3 * b

    def f(x: np.ndarray) -> float:
        return float(np.sum(scale * (x - centre) ** 2) + np.sum((x - 1.0) ** 4) + 0.1 * b)

    return f


def kinked(b: int) -> Scalar:
    """Non-smooth: many failed contractions, hence shrinks."""

    def f(x: np.ndarray) -> float:
        return float(np.sum(np.abs(x - 0.1 * b)) + np.max(np.abs(x)))

    return f


def plateau(b: int) -> Scalar:
    """Piecewise constant: many tied simplex values (tests the tie order of the sort)."""
    scale = 1.0 + 0.3 * b

    def f(x: np.ndarray) -> float:
        return float(np.floor(10.0 * np.sum(scale * (x - 0.2) ** 2)))

    return f


class Recorder:
    """Batched objective built from scalar functions; records calls and points per problem."""

    def __init__(self, functions: list[Scalar]):
        self.functions = functions
        self.calls = 0
        self.points: list[list[np.ndarray]] = [[] for _ in functions]
        self.per_call: list[np.ndarray] = []  # points per problem in each call

    def __call__(self, points: np.ndarray, problem: np.ndarray) -> np.ndarray:
        assert points.ndim == 2 and problem.shape == (points.shape[0],)
        self.calls += 1
        self.per_call.append(np.bincount(problem, minlength=len(self.functions)))
        values = np.empty(len(points))
        for k, (x, b) in enumerate(zip(points, problem, strict=True)):
            self.points[b].append(x.copy())
            values[k] = self.functions[b](x.copy())
        return values


def scipy_reference(
    f: Scalar,
    x0: np.ndarray,
    bounds: Bounds | None,
    budget: int,
    restart_every: int | None,
    xatol: float = 1e-4,
    fatol: float = 1e-4,
    seen: list[np.ndarray] | None = None,
) -> dict:
    """SciPy's adaptive NM, restarted from the previous ``res.x`` while budget is left."""

    def wrapped(x: np.ndarray) -> float:
        if seen is not None:
            seen.append(x.copy())
        return f(x)

    x, remaining, nfev, nit, runs = np.asarray(x0, dtype=float), budget, 0, 0, 0
    while remaining > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            res = minimize(
                wrapped,
                x,
                method="Nelder-Mead",
                bounds=bounds,
                options=dict(
                    adaptive=True,
                    maxfev=min(restart_every or budget, remaining),
                    xatol=xatol,
                    fatol=fatol,
                ),
            )
        runs, nfev, nit, remaining, x = (
            runs + 1,
            nfev + res.nfev,
            nit + res.nit,
            remaining - res.nfev,
            res.x,
        )
        if res.status == 0:
            break
    return dict(x=x, fun=res.fun, nfev=nfev, nit=nit, restarts=runs - 1, converged=res.status == 0)


def problem_bounds(bounds, b: int, shape: tuple[int, int]) -> Bounds | None:
    if bounds is None:
        return None
    return Bounds(np.broadcast_to(bounds[0], shape)[b], np.broadcast_to(bounds[1], shape)[b])


def assert_matches_scipy(
    functions: list[Scalar],
    x0: np.ndarray,
    *,
    bounds=None,
    budget: int | None = None,
    restart_every: int | None = None,
    xatol: float = 1e-4,
    fatol: float = 1e-4,
    objective: Recorder | None = None,
) -> BatchedNelderMeadResult:
    objective = Recorder(functions) if objective is None else objective
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        result = minimize_batched(
            objective,
            x0,
            bounds=bounds,
            max_evaluations=budget,
            restart_every=restart_every,
            xatol=xatol,
            fatol=fatol,
        )
    total = 200 * x0.shape[1] if budget is None else budget
    for b, f in enumerate(functions):
        ref = scipy_reference(
            f, x0[b], problem_bounds(bounds, b, x0.shape), total, restart_every, xatol, fatol
        )
        np.testing.assert_array_equal(result.x[b], ref["x"], err_msg=f"problem {b}")
        assert result.fun[b] == ref["fun"], b
        assert result.n_evaluations[b] == ref["nfev"], b
        assert result.n_iterations[b] == ref["nit"], b
        assert result.n_restarts[b] == ref["restarts"], b
        assert result.converged[b] == ref["converged"], b
        assert len(objective.points[b]) == ref["nfev"], b
    return result


def starts(n_problems: int, n_dim: int, seed: int = 0) -> np.ndarray:
    x0 = np.random.default_rng(seed).normal(size=(n_problems, n_dim))
    x0[0, 0] = 0.0  # SciPy's absolute step for zero components
    return x0


# --- equality with SciPy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "n_dim", "bounds"),
    [
        (rosenbrock, 2, None),
        (quartic, 4, None),
        (quartic, 5, (np.full(5, -0.5), np.full(5, 0.8))),  # the bounds become active
        (rosenbrock, 4, (np.full(4, -2.0), np.full(4, 0.9))),
    ],
)
def test_matches_scipy_when_converging(family, n_dim, bounds):
    functions = [family(b) for b in range(6)]
    result = assert_matches_scipy(functions, starts(6, n_dim), bounds=bounds, budget=4000)
    assert result.converged.all()
    assert (result.n_evaluations < 4000).all()
    if bounds is not None:
        assert np.isclose(result.x, bounds[1]).any()


@pytest.mark.parametrize("budget", [1, 3, 5, 6, 23, 57, 101, 200])
@pytest.mark.parametrize("family", [rosenbrock, kinked])
def test_matches_scipy_when_stopping_at_maxfev(family, budget):
    # budget 1..5 cuts the initial simplex short; the others stop inside iterations
    # (pending expansions/contractions and shrinks cut by the budget).
    functions = [family(b) for b in range(6)]
    bounds = (np.full(4, -1.5), np.full(4, 1.5))
    result = assert_matches_scipy(
        functions, starts(6, 4, seed=budget), bounds=bounds, budget=budget, xatol=1e-12, fatol=1e-12
    )
    assert not result.converged.any()
    assert (result.n_evaluations == budget).all()


@pytest.mark.parametrize("budget", [41, 55, 83])
def test_matches_scipy_when_budget_ends_inside_a_shrink(budget):
    # SciPy moves a shrunk vertex before evaluating it: when the budget ends inside a shrink,
    # that vertex is moved but keeps its old value.
    functions = [plateau(b) for b in range(6)]
    objective = Recorder(functions)
    x0 = np.clip(starts(6, 4, seed=1), -1.4, 1.4)
    assert_matches_scipy(
        functions,
        x0,
        bounds=(np.full(4, -1.5), np.full(4, 1.5)),
        budget=budget,
        xatol=1e-12,
        fatol=1e-12,
        objective=objective,
    )
    # some problem's last evaluations were a shrink cut short (2 or 3 of its 4 vertices)
    last = [next(c[b] for c in reversed(objective.per_call) if c[b]) for b in range(6)]
    assert any(count in (2, 3) for count in last)


def test_matches_scipy_with_ties_in_high_dimension():
    # 18 vertices (> 16, where NumPy's argsort is not insertion sort) with many tied values
    functions = [plateau(b) for b in range(4)]
    assert_matches_scipy(functions, starts(4, 17), budget=400)


def test_default_budget_and_initial_simplex_reflection():
    # x0 just below the upper bound: SciPy reflects the initial simplex into the box
    x0 = np.array([[0.79, 0.5, 0.0], [0.0, 0.795, 0.6], [0.3, 0.3, 0.3]])
    bounds = (np.zeros(3), np.full(3, 0.8))
    result = assert_matches_scipy([quartic(b) for b in range(3)], x0, bounds=bounds)
    assert (result.n_evaluations <= 600).all()


def test_x0_outside_bounds_is_clipped_with_warning_like_scipy():
    x0 = np.array([[2.0, -3.0], [0.5, 0.5]])
    bounds = (np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.warns(OptimizeWarning, match="not within the specified bounds"):
        minimize_batched(Recorder([quartic(0), quartic(1)]), x0, bounds=bounds, max_evaluations=50)
    assert_matches_scipy([quartic(0), quartic(1)], x0, bounds=bounds, budget=50)


def test_iterate_sequence_equals_scipy():
    functions = [rosenbrock(b) for b in range(5)]
    x0 = np.clip(starts(5, 3, seed=3), -0.9, 0.9)
    bounds = (np.full(3, -1.0), np.full(3, 0.95))
    for restart_every in (None, 60):
        objective = Recorder(functions)
        minimize_batched(
            objective, x0, bounds=bounds, max_evaluations=300, restart_every=restart_every
        )
        seen: list[np.ndarray] = []
        scipy_reference(functions[0], x0[0], Bounds(*bounds), 300, restart_every, seen=seen)
        np.testing.assert_array_equal(np.array(objective.points[0]), np.array(seen))


# --- restarts ------------------------------------------------------------------------------


def test_restarts_equal_a_loop_over_scipy():
    functions = [rosenbrock(0), quartic(1), kinked(2)]
    x0 = starts(3, 3, seed=7)
    bounds = (np.full(3, -2.0), np.full(3, 2.0))
    result = assert_matches_scipy(
        functions, x0, bounds=bounds, budget=400, restart_every=90, xatol=1e-10, fatol=1e-10
    )
    assert (result.n_restarts >= 1).all()
    # problems stopping early by convergence and problems using the whole budget
    result = assert_matches_scipy(functions, x0, budget=1000, restart_every=70)
    assert result.converged.any()


def test_restart_every_at_least_budget_is_a_single_run():
    functions = [quartic(b) for b in range(3)]
    x0 = starts(3, 2)
    a = minimize_batched(Recorder(functions), x0, max_evaluations=80, restart_every=500)
    b = minimize_batched(Recorder(functions), x0, max_evaluations=80)
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.n_restarts == 0).all()


# --- budget, batching, bounds --------------------------------------------------------------


@pytest.mark.parametrize(("budget", "restart_every"), [(77, 20), (50, None), (13, 4), (200, 33)])
def test_budget_is_never_exceeded(budget, restart_every):
    functions = [kinked(b) if b % 2 else rosenbrock(b) for b in range(8)]
    objective = Recorder(functions)
    result = minimize_batched(
        objective,
        starts(8, 4, seed=budget),
        max_evaluations=budget,
        restart_every=restart_every,
        xatol=0.0,
        fatol=0.0,
    )
    counts = np.array([len(p) for p in objective.points])
    assert (counts <= budget).all()
    np.testing.assert_array_equal(counts, result.n_evaluations)


def test_objective_calls_scale_with_iterations_not_problems():
    n_problems = 50
    functions = [rosenbrock(b) if b % 3 else kinked(b) for b in range(n_problems)]
    objective = Recorder(functions)
    result = minimize_batched(objective, starts(n_problems, 3, seed=11), max_evaluations=600)
    total_points = sum(len(p) for p in objective.points)
    # one round per initial simplex / reflection / expansion-or-contraction / shrink
    assert result.n_objective_calls == objective.calls
    assert objective.calls <= 3 * result.n_iterations.max() + 3
    assert total_points > 20 * objective.calls


def test_points_respect_per_problem_bounds():
    n_problems, n_dim = 6, 4
    rng = np.random.default_rng(5)
    low = rng.uniform(-1.0, 0.0, size=(n_problems, n_dim))
    high = low + rng.uniform(0.2, 0.8, size=(n_problems, n_dim))
    x0 = rng.uniform(low, high)
    x0[0] = high[0]  # starts on the upper bound
    objective = Recorder([rosenbrock(b) for b in range(n_problems)])
    result = assert_matches_scipy(
        objective.functions,
        x0,
        bounds=(low, high),
        budget=300,
        restart_every=100,
        objective=objective,
    )
    for b in range(n_problems):
        points = np.array(objective.points[b])
        assert (points >= low[b]).all() and (points <= high[b]).all()
    assert (result.x >= low).all() and (result.x <= high).all()


# --- result extras -------------------------------------------------------------------------


def test_history_and_progress():
    functions = [quartic(b) for b in range(4)]

    class Bar:
        total = 0

        def update(self, n: int) -> None:
            self.total += n

    bar = Bar()
    result = minimize_batched(
        Recorder(functions),
        starts(4, 3),
        max_evaluations=200,
        restart_every=50,
        progress=bar,
        record_history=True,
    )
    assert bar.total == result.n_evaluations.sum()
    assert result.history is not None and result.history.shape[1] == 4
    assert (np.diff(result.history, axis=0) <= 0).all()
    np.testing.assert_array_equal(result.history[-1], result.fun)
    assert minimize_batched(Recorder(functions), starts(4, 3), max_evaluations=20).history is None


def test_progress_bar_on_stderr(capsys):
    minimize_batched(Recorder([quartic(0)]), starts(1, 2), max_evaluations=30, progress=True)
    assert "eval" in capsys.readouterr().err


# --- input validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(x0=np.zeros(3)), "x0"),
        (dict(x0=np.zeros((2, 0))), "x0"),
        (dict(x0=np.array([[0.0, np.nan]])), "x0"),
        (dict(bounds=(np.zeros(2), np.zeros(2))), "low < high"),
        (dict(bounds=(np.ones(2), np.zeros(2))), "low < high"),
        (dict(bounds=(np.zeros(3), np.ones(3))), "bounds low"),
        (dict(bounds=(np.zeros(2), np.full(2, np.nan))), "bounds high"),
        (dict(bounds=np.zeros(2)), "bounds"),
        (dict(max_evaluations=0), "max_evaluations"),
        (dict(max_evaluations=2.5), "max_evaluations"),
        (dict(restart_every=-1), "restart_every"),
        (dict(xatol=np.nan), "xatol"),
        (dict(progress="yes"), "progress"),
    ],
)
def test_bad_input_raises(kwargs, match):
    arguments = dict(x0=np.full((2, 2), 0.5), bounds=None)
    arguments.update(kwargs)
    x0 = arguments.pop("x0")
    with pytest.raises(ValueError, match=match):
        minimize_batched(Recorder([quartic(0), quartic(1)]), x0, **arguments)


def test_objective_with_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="objective"):
        minimize_batched(lambda points, problem: np.zeros(1), np.zeros((2, 2)))
