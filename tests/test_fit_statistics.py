"""Fit statistics (Poisson χ², log10 intensities) and multi-start refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specinv.config import ConfigError
from specinv.fitting.levenberg_marquardt import refine_levenberg_marquardt
from specinv.fitting.problem import SpectrumFitProblem
from specinv.fitting.settings import FitSettings
from specinv.fitting.starts import perturbed_starts


def gaussian_peaks(params: torch.Tensor) -> torch.Tensor:
    """Counts [K, 200] of a Gaussian peak: params [K, 3] = (log10 height, centre, width)
    on a flat background of 2 counts; spans ~4 decades."""
    x = torch.linspace(-10.0, 10.0, 200, dtype=params.dtype)
    height, centre, width = params.unbind(1)
    return (
        10.0 ** height[:, None] * torch.exp(-0.5 * ((x - centre[:, None]) / width[:, None]) ** 2)
        + 2.0
    )


LOW, HIGH = np.array([1.0, -5.0, 0.3]), np.array([6.0, 5.0, 5.0])


def residuals_of(observed: np.ndarray, expected: torch.Tensor, statistic: str) -> np.ndarray:
    """The residuals [C] of one observed spectrum [1, C] against fixed expected counts."""
    problem = SpectrumFitProblem(
        lambda p: expected.expand(p.shape[0], -1),
        observed,
        None,
        [0.0],
        [1.0],
        statistic=statistic,
    )
    return problem.residuals(torch.zeros((1, 1), dtype=torch.float64), [0]).numpy()[0]


def test_log10_residuals_are_differences_of_log_intensities_with_half_the_smallest_value():
    observed = np.array([[0.0, 4.0, 10.0, 1000.0]])
    expected = torch.tensor([[1.0, 4.0, 20.0, 100.0]], dtype=torch.float64)
    r = residuals_of(observed, expected, "log10")
    f = 2.0  # half the smallest positive value (4)
    np.testing.assert_allclose(r, np.log10(observed[0] + f) - np.log10(expected[0].numpy() + f))
    # the Poisson statistic of the same spectra: (x - s) / sqrt(x + 1)
    poisson = SpectrumFitProblem(
        lambda p: expected.expand(p.shape[0], -1), observed, None, [0.0], [1.0]
    )
    r = poisson.residuals(torch.zeros((1, 1), dtype=torch.float64), [0]).numpy()[0]
    np.testing.assert_allclose(r, (observed[0] - expected[0].numpy()) / np.sqrt(observed[0] + 1))


@pytest.mark.parametrize("statistic", ["log10", "deviance"])
def test_jacobians_agree_between_finite_differences_and_forward_mode(statistic):
    true = torch.tensor([[4.0, 0.5, 1.2], [2.5, -1.0, 2.0]], dtype=torch.float64)
    counts = np.random.default_rng(1).poisson(gaussian_peaks(true).numpy())
    problem = SpectrumFitProblem(gaussian_peaks, counts, None, LOW, HIGH, statistic=statistic)
    p = true.numpy() + 0.05
    r_fd, j_fd = problem.jacobian(p, [0, 1], relative_step=1e-7)
    r_fm, j_fm = problem.jacobian(p, [0, 1], method="forward-mode")
    np.testing.assert_allclose(r_fd.numpy(), r_fm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(j_fd.numpy(), j_fm.numpy(), atol=1e-5 * np.abs(j_fm.numpy()).max())


@pytest.mark.parametrize("statistic", ["poisson", "log10"])
def test_both_statistics_recover_a_noisy_peak(statistic):
    true = np.array([[4.0, 0.5, 1.2], [3.0, -2.0, 0.8]])
    counts = np.random.default_rng(2).poisson(gaussian_peaks(torch.as_tensor(true)).numpy())
    problem = SpectrumFitProblem(gaussian_peaks, counts, None, LOW, HIGH, statistic=statistic)
    res = refine_levenberg_marquardt(problem, true + [0.3, 0.8, 0.3], max_iterations=100)
    np.testing.assert_allclose(res.x, true, atol=0.05)
    assert (res.chi2 < res.chi2_start).all()


def test_bad_statistics_and_inputs():
    counts = np.ones((1, 200))
    with pytest.raises(ValueError, match="statistic"):
        SpectrumFitProblem(gaussian_peaks, counts, None, LOW, HIGH, statistic="log")
    with pytest.raises(ValueError, match=">= 0"):
        SpectrumFitProblem(gaussian_peaks, -counts, None, LOW, HIGH, statistic="log10")
    with pytest.raises(ConfigError, match="fitting.statistic"):
        FitSettings.from_config({"fitting": {"statistic": "chi"}})
    with pytest.raises(ConfigError, match="fitting.refine_start_spread"):
        FitSettings.from_config({"fitting": {"refine_start_spread": 0}})
    with pytest.raises(ConfigError, match="fitting.refine_starts"):
        FitSettings.from_config({"fitting": {"refine_starts": 0}})
    with pytest.raises(
        ConfigError, match="fitting.refine_from: expected one of network, ml_autofit"
    ):
        FitSettings.from_config({"fitting": {"refine_from": "autofit"}})


def test_perturbed_starts_keep_the_start_stay_in_the_box_and_depend_only_on_the_key():
    start = np.array([[0.5, 0.0], [0.99, -0.9], [0.2, 0.3]])
    low, high = np.array([0.0, -1.0]), np.array([1.0, 1.0])
    out = perturbed_starts(start, low, high, 50, 0.1, seed=7, keys=np.array([10, 11, 12]))
    assert out.shape == (3, 50, 2)
    np.testing.assert_array_equal(out[:, 0], start)
    assert (out >= low).all() and (out <= high).all()
    # the spread: std of the perturbations of an interior start ~ 0.1 × range
    assert 0.15 < out[0, 1:, 1].std() < 0.25 and 0.07 < out[0, 1:, 0].std() < 0.13
    # spectrum 11 alone, or in another company, gets the same starts
    alone = perturbed_starts(start[1:2], low, high, 50, 0.1, seed=7, keys=np.array([11]))
    np.testing.assert_array_equal(alone[0], out[1])
    other = perturbed_starts(start[1:2], low, high, 50, 0.1, seed=8, keys=np.array([11]))
    assert not np.array_equal(other[0, 1:], out[1, 1:])
    with pytest.raises(ValueError, match="keys"):
        perturbed_starts(start, low, high, 5, 0.1, 0, np.array([1, 2]))


def test_deviance_residuals_square_to_the_poisson_deviance():
    from scipy.special import xlogy

    observed = np.array([[0.0, 3.0, 10.0, 1.0, 7.0]])
    expected = torch.tensor([[0.5, 3.0, 6.0, 0.0, 9.5]], dtype=torch.float64)
    r = residuals_of(observed, expected, "deviance")
    lam = expected.numpy()[0] + 1e-6
    x = observed[0]
    # (the closed form cancels where λ ≈ x: compared to 1e-12 absolute)
    np.testing.assert_allclose(
        r**2, 2 * (lam - x + xlogy(x, x) - xlogy(x, lam)), rtol=1e-9, atol=1e-12
    )
    assert np.sign(r).tolist() == [-1.0, -1.0, 1.0, 1.0, -1.0]  # sign(x - λ)
    assert abs(r[1]) < 1e-3  # λ = x (up to the floor)
    assert np.isfinite(r).all()  # an empty model channel with counts stays finite
    with pytest.raises(ValueError, match="takes no weights"):
        SpectrumFitProblem(
            lambda p: expected, observed, None, [0.0], [1.0], statistic="deviance", weights=x[None]
        )


def test_the_deviance_fit_is_the_maximum_likelihood_estimate():
    """Counts k_i ~ Poisson(θ a_i): the likelihood's maximum is Σk / Σa exactly; the
    χ² of eq. 4 (weights 1/(k + 1)) lands below it at low counts."""
    rng = np.random.default_rng(5)
    a = rng.uniform(0.2, 1.0, size=(1, 400))
    counts = rng.poisson(3.0 * a)
    model = lambda p: p[:, :1] * torch.as_tensor(a, dtype=p.dtype)  # noqa: E731
    ml = counts.sum() / a.sum()
    fits = {}
    for statistic in ("deviance", "poisson"):
        problem = SpectrumFitProblem(model, counts, None, [0.01], [100.0], statistic=statistic)
        for jacobian in ("finite-difference", "forward-mode"):
            res = refine_levenberg_marquardt(
                problem,
                np.array([[1.0]]),
                max_iterations=50,
                ftol=0.0,
                chi2_tol=1e-12,
                jacobian=jacobian,
                broyden=False,
            )
            fits[statistic, jacobian] = float(res.x[0, 0])
    assert fits["deviance", "forward-mode"] == pytest.approx(ml, rel=1e-5)
    assert fits["deviance", "finite-difference"] == pytest.approx(ml, rel=1e-4)
    assert fits["poisson", "forward-mode"] < 0.9 * ml  # Neyman's χ² is biased low here
