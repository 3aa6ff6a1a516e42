"""The χ² fit problem and the batched Levenberg–Marquardt refinement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from specinv.fitting.levenberg_marquardt import refine_levenberg_marquardt
from specinv.fitting.problem import SpectrumFitProblem
from specinv.physics.rbs import RBSSimulator, load_experiment, poisson_noise
from specinv.techniques.base import PartialSimulation
from specinv.techniques.rbs import RBSTechnique

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rbs_W_D_2layers.yaml"
LOW, HIGH = 50.0, 5000.0


@pytest.fixture(scope="module")
def simulator() -> RBSSimulator:
    return RBSSimulator.from_experiment(load_experiment(EXAMPLE), device="cpu")


@pytest.fixture(scope="module")
def spectra(simulator):
    rng = np.random.default_rng(3)
    truth = rng.uniform(200, 4000, (12, simulator.n_parameters))
    observed = poisson_noise(simulator.simulate(torch.as_tensor(truth)), seed=4).numpy()
    roi = np.zeros(observed.shape[1], dtype=bool)
    roi[100:900] = True
    return truth, observed, roi


def problem(simulator, observed, roi, simulate=None, partial=None):
    d = simulator.n_parameters
    return SpectrumFitProblem(
        simulate or simulator.simulate,
        observed,
        roi,
        np.full(d, LOW),
        np.full(d, HIGH),
        partial=partial,
    )


def by_layer(simulator, cost=None) -> PartialSimulation:
    """The layers of the W/D sample as parameter groups (RBSTechnique's, optionally with
    other costs)."""
    partial = RBSTechnique(simulator.setup, simulator.structure, device="cpu").partial_simulation()
    assert partial.parameter_group.tolist() == [0, 0, 1, 1]
    assert partial.relative_cost.tolist() == [1.0, 0.5]  # W in each layer; D: none
    if cost is None:
        return partial
    return PartialSimulation(
        lambda p, g: simulator.simulate(p, first_layer=g), partial.parameter_group, np.asarray(cost)
    )


def test_chi2_matches_a_direct_computation(simulator, spectra):
    truth, observed, roi = spectra
    prob = problem(simulator, observed, roi)
    rows = np.array([3, 0, 3])
    chi2 = prob.chi2(truth[rows], rows)
    s = simulator.simulate(torch.as_tensor(truth[rows])).numpy()
    x = observed[rows].astype(float)
    direct = (((x - s) ** 2 / (x + 1))[:, roi]).sum(1)
    np.testing.assert_allclose(chi2, direct, rtol=1e-12)
    assert chi2[0] == chi2[2]
    assert prob.n_simulations.tolist()[:4] == [1, 0, 0, 2]
    assert prob.dof == 800


def test_finite_difference_jacobian_equals_forward_mode(simulator, spectra):
    truth, observed, roi = spectra
    prob = problem(simulator, observed, roi)
    rows = np.arange(3)
    at = truth[rows].copy()
    at[0, 1] = HIGH  # at the upper bound: the step goes inwards
    r_fd, j_fd = prob.jacobian(at, rows, "finite-difference")
    r_ad, j_ad = prob.jacobian(at, rows, "forward-mode")
    # the compiled model (no derivatives) and the torch code agree to rounding
    torch.testing.assert_close(r_fd, r_ad, rtol=1e-10, atol=1e-10)
    scale = j_ad.abs().amax(dim=1, keepdim=True)
    assert float(((j_fd - j_ad).abs() / scale).max()) < 1e-4
    assert j_fd.shape == (3, 800, simulator.n_parameters)
    # with the residuals at the point given, D simulations instead of D + 1, same result
    before = prob.n_simulations.copy()
    r_b, j_b = prob.jacobian(at, rows, "finite-difference", base=r_fd)
    assert (prob.n_simulations - before)[:3].tolist() == [simulator.n_parameters] * 3
    assert torch.equal(r_b, r_fd) and torch.equal(j_b, j_fd)


def test_layer_by_layer_jacobian_equals_the_whole_spectrum_one(simulator, spectra):
    """Steps of the layer-2 parameters taken on the layer-2 part of the spectrum: the same
    Jacobian (both within 1e-4 of forward mode) for fewer simulated spectra."""
    truth, observed, roi = spectra
    rows = np.arange(3)
    at = truth[rows] * 1.02
    at[1, 3] = HIGH  # at the upper bound: the step goes inwards
    whole = problem(simulator, observed, roi)
    layered = problem(simulator, observed, roi, partial=by_layer(simulator))
    r_w, j_w = whole.jacobian(at, rows)
    r_l, j_l = layered.jacobian(at, rows)
    _, j_ad = problem(simulator, observed, roi).jacobian(at, rows, "forward-mode")
    assert torch.equal(r_w, r_l)
    scale = j_ad.abs().amax(dim=1, keepdim=True)
    assert torch.equal(j_l[..., :2], j_w[..., :2])  # layer 1: whole spectra
    assert float(((j_l - j_ad).abs() / scale).max()) < 1e-4
    assert float(((j_l - j_w).abs() / scale).max()) < 1e-5
    # D + 1 = 5 whole spectra, or 1 + 2 whole and 3 half ones (p and two steps)
    assert whole.n_simulations[:3].tolist() == [5.0] * 3
    assert layered.n_simulations[:3].tolist() == [4.5] * 3
    # with the residuals at p given: 2 whole and 3 half spectra
    _, j_b = layered.jacobian(at, rows, base=r_l)
    assert layered.n_simulations[:3].tolist() == [8.0] * 3 and torch.equal(j_b, j_l)
    # where n + 1 partial spectra would cost more than n whole ones, whole ones are used
    costly = problem(simulator, observed, roi, partial=by_layer(simulator, [1.0, 0.7]))
    _, j_c = costly.jacobian(at, rows)
    assert costly.n_simulations[:3].tolist() == [5.0] * 3 and torch.equal(j_c, j_w)


def test_a_layer_that_scatters_nothing_back_has_a_free_zero_jacobian(simulator, spectra):
    """4He does not backscatter from D: a deuterium bottom layer changes no detected
    particle, and its column costs nothing."""
    _, observed, roi = spectra
    technique = RBSTechnique(simulator.setup, [["W"], ["D"]], device="cpu")
    partial = technique.partial_simulation()
    assert partial.relative_cost.tolist() == [1.0, 0.0]
    prob = SpectrumFitProblem(
        technique.simulate, observed, roi, np.full(2, LOW), np.full(2, HIGH), partial=partial
    )
    r, jac = prob.jacobian(np.array([[800.0, 2000.0]]), [0])
    assert prob.n_simulations[0] == 2.0  # p and the W step
    assert float(jac[0, :, 0].abs().max()) > 0 and float(jac[0, :, 1].abs().max()) == 0


def test_refinement_reaches_the_noise_level_and_stays_in_bounds(simulator, spectra):
    truth, observed, roi = spectra
    seen = []

    def watched(params):
        seen.append(params.detach().clone())
        return simulator.simulate(params)

    prob = problem(simulator, observed, roi, watched)
    rng = np.random.default_rng(5)
    start = truth * rng.uniform(0.85, 1.15, truth.shape)
    start[0, 0] = 2 * HIGH  # outside: clipped
    res = refine_levenberg_marquardt(prob, start, max_iterations=25)
    points = torch.cat(seen)
    assert float(points.min()) >= LOW and float(points.max()) <= HIGH
    assert (res.x >= LOW).all() and (res.x <= HIGH).all()
    assert (res.chi2 <= res.chi2_start).all()
    # the χ² of the truth is the noise level: the fit reaches it (or goes below)
    chi2_truth = problem(simulator, observed, roi).chi2(truth, np.arange(len(truth)))
    assert np.mean(res.chi2 <= chi2_truth * 1.0001) >= 0.9
    assert np.median(np.abs(res.x - truth) / truth) < 0.03
    assert (res.n_iterations <= 25).all()
    assert (res.n_simulations == prob.n_simulations).all()


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_broyden_updates_save_simulations_without_losing_the_minimum(simulator, spectra, retries):
    truth, observed, roi = spectra
    start = truth * np.random.default_rng(6).uniform(0.95, 1.05, truth.shape)
    runs = {}
    for broyden in (False, True):
        prob = problem(simulator, observed, roi)
        runs[broyden] = refine_levenberg_marquardt(
            prob, start, max_iterations=30, chi2_tol=0.01, broyden=broyden, broyden_retries=retries
        )
    plain, updated = runs[False], runs[True]
    # the same minimum (to well within Δχ² = 0.1), for fewer simulated spectra
    assert np.all(updated.chi2 <= plain.chi2 + 0.1)
    assert updated.n_simulations.sum() < 0.9 * plain.n_simulations.sum()
    assert updated.converged.mean() >= plain.converged.mean()
    assert np.all((updated.x >= LOW) & (updated.x <= HIGH))


def test_layer_by_layer_jacobians_reach_the_same_minimum_for_less(simulator, spectra):
    truth, observed, roi = spectra
    start = truth * np.random.default_rng(7).uniform(0.9, 1.1, truth.shape)
    plain = refine_levenberg_marquardt(
        problem(simulator, observed, roi), start, max_iterations=30, chi2_tol=0.01
    )
    layered = refine_levenberg_marquardt(
        problem(simulator, observed, roi, partial=by_layer(simulator)),
        start,
        max_iterations=30,
        chi2_tol=0.01,
    )
    assert np.all(np.abs(layered.chi2 - plain.chi2) < 0.1)
    assert layered.n_simulations.sum() < 0.95 * plain.n_simulations.sum()
    assert layered.converged.mean() >= plain.converged.mean()


def test_a_broyden_retry_replaces_a_fresh_jacobian(simulator, spectra):
    """A failed step with an updated Jacobian is retried (after a rank-one update from the
    failed step) instead of evaluating the Jacobian at once: fewer evaluations."""
    truth, observed, roi = spectra
    start = truth * np.random.default_rng(6).uniform(0.95, 1.05, truth.shape)
    evaluated = {}
    for retries in (0, 1):
        prob = problem(simulator, observed, roi)
        rows_evaluated = []
        jacobian = prob.jacobian

        def counted(params, rows, *args, _log=rows_evaluated, _jac=jacobian, **kwargs):
            _log.append(len(rows))
            return _jac(params, rows, *args, **kwargs)

        prob.jacobian = counted
        refine_levenberg_marquardt(
            prob, start, max_iterations=30, chi2_tol=0.01, broyden_retries=retries
        )
        evaluated[retries] = sum(rows_evaluated)
    assert evaluated[1] < evaluated[0]


def test_a_start_at_the_minimum_stops_without_a_trial_step(simulator, spectra):
    """With a fresh Jacobian, a predicted χ² decrease below the tolerance ends the fit
    before any trial simulation: one Jacobian (D + 1 simulations) and nothing else."""
    truth, observed, roi = spectra
    first = refine_levenberg_marquardt(
        problem(simulator, observed, roi), truth, max_iterations=30, chi2_tol=1e-4
    )
    assert first.converged.all()
    prob = problem(simulator, observed, roi)
    again = refine_levenberg_marquardt(prob, first.x, chi2_tol=0.1)
    d = simulator.n_parameters
    assert again.converged.all()
    assert (again.n_simulations == d + 1).all()
    assert (again.n_iterations == 0).all()
    np.testing.assert_array_equal(again.x, first.x)
    # a start away from the minimum still takes steps (the rule is not a shortcut)
    moved = refine_levenberg_marquardt(
        problem(simulator, observed, roi), truth * 1.05, chi2_tol=0.1
    )
    assert (moved.n_iterations >= 1).all()
    assert (moved.chi2 < moved.chi2_start).all()


def test_bad_inputs(simulator, spectra):
    truth, observed, roi = spectra
    d = simulator.n_parameters
    with pytest.raises(ValueError, match="observed"):
        SpectrumFitProblem(simulator.simulate, -observed, roi, np.zeros(d), np.ones(d))
    with pytest.raises(ValueError, match="roi"):
        SpectrumFitProblem(simulator.simulate, observed, roi[:10], np.zeros(d), np.ones(d))
    with pytest.raises(ValueError, match="lower bound"):
        SpectrumFitProblem(simulator.simulate, observed, roi, np.ones(d), np.ones(d))
    prob = problem(simulator, observed, roi)
    with pytest.raises(ValueError, match="x0"):
        refine_levenberg_marquardt(prob, truth[:3])
    with pytest.raises(ValueError, match="method"):
        prob.jacobian(truth[:1], [0], method="magic")
    with pytest.raises(ValueError, match="chi2_tol"):
        refine_levenberg_marquardt(prob, truth, chi2_tol=-1.0)
    with pytest.raises(ValueError, match="broyden_retries"):
        refine_levenberg_marquardt(prob, truth, broyden_retries=-1)
    partial = by_layer(simulator)
    for group, cost in (
        ([0, 0, 1], [1.0, 0.5]),
        ([0, 0, 1, 2], [1.0, 0.5]),
        ([0, 0, 1, 1], [1.0, 1.5]),
        ([0.0, 0.0, 1.0, 1.0], [1.0, 0.5]),
    ):
        with pytest.raises(ValueError, match="partial: expected a group"):
            SpectrumFitProblem(
                simulator.simulate,
                observed,
                roi,
                np.zeros(d),
                np.ones(d),
                partial=PartialSimulation(partial.simulate_from, np.array(group), np.array(cost)),
            )
