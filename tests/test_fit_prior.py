"""Fits with a Gaussian prior per spectrum (a network's estimate and uncertainty): the
residuals, their Jacobians, and the maximum a posteriori solution of a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specinv.fitting.levenberg_marquardt import refine_levenberg_marquardt
from specinv.fitting.problem import SpectrumFitProblem
from specinv.techniques.base import PartialSimulation

RNG = np.random.default_rng(11)
#: a linear forward model: 40 channels from 3 parameters, the third seen only through
#: the sum of the first two in half of the channels (a weakly determined direction)
A = np.abs(RNG.normal(size=(40, 3))) * 50.0
A[20:, 2] = 0.0
A[:20, 2] = A[:20, 0] * 1e-3
GROUP = np.array([0, 1, 1])  # parameters 1 and 2 change only the second half's terms


def linear(params: torch.Tensor) -> torch.Tensor:
    return params @ torch.as_tensor(A.T, dtype=params.dtype)


def linear_from(params: torch.Tensor, first: int) -> torch.Tensor:
    """The contributions of the parameters of groups >= first."""
    keep = torch.as_tensor(GROUP >= first, dtype=params.dtype)
    return (params * keep) @ torch.as_tensor(A.T, dtype=params.dtype)


LOW, HIGH = np.full(3, -100.0), np.full(3, 100.0)


def problem(observed, mean, std, partial=False):
    return SpectrumFitProblem(
        linear,
        observed,
        None,
        LOW,
        HIGH,
        prior_mean=mean,
        prior_std=std,
        partial=PartialSimulation(linear_from, GROUP, np.array([1.0, 0.2])) if partial else None,
    )


def test_prior_residuals_and_their_derivatives():
    truth = np.array([[2.0, 3.0, 1.0], [4.0, 1.0, 2.0]])
    observed = RNG.poisson(truth @ A.T).astype(float)
    mean, std = truth + 0.5, np.array([[1.0, 2.0, np.inf], [0.5, 0.5, 0.5]])
    at = truth + 0.1
    p = problem(observed, mean, std)
    r = p.residuals(at, [0, 1]).numpy()
    assert r.shape == (2, 43)
    np.testing.assert_allclose(r[:, 40:], (mean - at) / std)
    assert r[0, 42] == 0.0  # an infinite standard deviation: no prior
    _, exact = p.jacobian(at, [0, 1], method="forward-mode")
    for partial in (False, True):
        _, fd = problem(observed, mean, std, partial).jacobian(at, [0, 1])
        np.testing.assert_allclose(fd.numpy(), exact.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(exact[:, 40:].numpy(), -np.stack([np.diag(1 / s) for s in std]))
    # χ² includes the prior's term
    chi2 = p.chi2(at, [0, 1])
    np.testing.assert_allclose(chi2, (r**2).sum(axis=1))


@pytest.mark.parametrize("partial", [False, True])
def test_the_fit_reaches_the_maximum_a_posteriori_solution(partial):
    """For counts linear in the parameters, weights 1/(x + 1) and a Gaussian prior, the
    minimum is (AᵀWA + P)⁻¹ (AᵀWx + Pμ): the fit must land on it."""
    truth = np.array([[2.0, 3.0, 1.0], [1.0, 5.0, 4.0], [3.0, 2.0, 0.5]])
    observed = RNG.poisson(truth @ A.T).astype(float)
    mean = truth + RNG.normal(scale=0.5, size=truth.shape)
    std = np.array([[0.3, 0.3, 0.3], [1.0, 1.0, 1.0], [np.inf, np.inf, 0.2]])
    expected = []
    for x, mu, s in zip(observed, mean, std, strict=True):
        w = np.diag(1.0 / (x + 1.0))
        prior = np.diag(1.0 / s**2)
        expected.append(np.linalg.solve(A.T @ w @ A + prior, A.T @ w @ x + prior @ mu))
    res = refine_levenberg_marquardt(
        problem(observed, mean, std, partial), mean, max_iterations=50, ftol=0, chi2_tol=1e-10
    )
    np.testing.assert_allclose(res.x, np.array(expected), rtol=1e-5, atol=1e-6)


def test_bad_priors_are_refused():
    observed = np.ones((2, 40))
    good = np.ones((2, 3))
    with pytest.raises(ValueError, match="both or neither"):
        SpectrumFitProblem(linear, observed, None, LOW, HIGH, prior_mean=good)
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        SpectrumFitProblem(
            linear, observed, None, LOW, HIGH, prior_mean=good[:1], prior_std=good[:1]
        )
    with pytest.raises(ValueError, match="> 0"):
        SpectrumFitProblem(linear, observed, None, LOW, HIGH, prior_mean=good, prior_std=0 * good)


def test_the_refinement_starts_and_prior_follow_the_settings():
    import xarray as xr

    from specinv.fitting.runner import refinement_start
    from specinv.fitting.settings import FitSettings

    dims = ("sample", "param")
    network = xr.Dataset({"mean": (dims, [[1.0, 2.0]]), "std": (dims, [[0.1, 0.2]])})
    autofit = xr.Dataset({"estimate": (dims, [[3.0, 4.0]])})

    def settings(**kw):
        return FitSettings.from_config({"fitting": kw})

    x0, prior = refinement_start(settings(), network, None)
    assert x0.tolist() == [[1.0, 2.0]] and prior is None
    x0, prior = refinement_start(settings(refine_from="ml_autofit"), None, autofit)
    assert x0.tolist() == [[3.0, 4.0]] and prior is None
    chained = settings(refine_from="ml_autofit", refine_prior="network")
    x0, (mean, std) = refinement_start(chained, network, autofit)
    assert x0.tolist() == [[3.0, 4.0]] and std.tolist() == [[0.1, 0.2]]
    with pytest.raises(ValueError, match="need the network's predictions"):
        refinement_start(chained, None, autofit)
    with pytest.raises(ValueError, match="needs its fit"):
        refinement_start(settings(refine_from="ml_autofit"), network, None)
