"""Cramér–Rao bounds of Poisson-counted spectra against closed forms, the RBS thin-film
peak and the maximum-likelihood fits they bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import stats

from specinv.evaluation.information import (
    cramer_rao_std,
    efficient_median_relative_error,
    poisson_fisher_information,
)
from specinv.evaluation.tables import information_table
from specinv.physics.rbs import Detector, PhysicsOptions, RBSSimulator, Setup


def test_one_scale_parameter_is_known_to_one_over_root_counts():
    """λ = y·f: F = Σ f / y, so σ = sqrt(y / Σ f) and σ/y = 1/sqrt(N) with N = Σ λ."""
    f = np.array([0.0, 2.0, 5.0, 3.0])
    y = 40.0
    std = cramer_rao_std(poisson_fisher_information(y * f, f[:, None]))
    assert std.shape == (1,)
    assert std[0] / y == pytest.approx(1 / np.sqrt((y * f).sum()), rel=1e-12)


def test_linear_model_against_the_inverse_by_hand():
    """Two channels, two parameters: F = Aᵀ diag(1/λ) A, inverted by hand."""
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    y = np.array([5.0, 7.0])
    lam = a @ y  # 17, 26
    f11 = 4 / 17 + 1 / 26
    f12 = 2 / 17 + 3 / 26
    f22 = 1 / 17 + 9 / 26
    det = f11 * f22 - f12**2
    std = cramer_rao_std(poisson_fisher_information(lam, a))
    np.testing.assert_allclose(std, np.sqrt([f22 / det, f11 / det]), rtol=1e-12)
    # the region of interest leaves channels out; a channel with λ = 0 carries nothing
    only_first = poisson_fisher_information(lam, a, roi=np.array([True, False]))
    np.testing.assert_allclose(only_first, np.outer(a[0], a[0]) / 17)
    assert poisson_fisher_information(np.array([0.0, 26.0]), a)[0, 0] == pytest.approx(1 / 26)


def test_the_maximum_likelihood_fit_reaches_the_bound():
    """Monte Carlo: the ML estimate of a linear Poisson model (many counts) has the
    bound's standard deviations."""
    rng = np.random.default_rng(0)
    a = np.array([[3.0, 1.0], [1.0, 2.0], [0.5, 4.0]])
    y = np.array([400.0, 300.0])
    counts = rng.poisson(a @ y, size=(20000, 3)).astype(float)
    # the ML estimate of an identified linear model with Poisson counts, by Fisher scoring
    est = np.tile(y, (len(counts), 1))
    for _ in range(20):
        lam = est @ a.T
        grad = ((counts / lam - 1)[:, :, None] * a).sum(1)
        info = np.einsum("ki,ij,il->kjl", 1 / lam, a, a)
        est = est + np.linalg.solve(info, grad[..., None])[..., 0]
    bound = cramer_rao_std(poisson_fisher_information(a @ y, a))
    np.testing.assert_allclose(est.std(axis=0), bound, rtol=0.03)


def test_unseen_and_degenerate_parameters_are_undetermined():
    a = np.array([[1.0, 0.0, 2.0, 2.0], [3.0, 0.0, 1.0, 1.0], [1.0, 0.0, 5.0, 5.0]])
    lam = np.array([10.0, 20.0, 30.0])
    std = cramer_rao_std(poisson_fisher_information(lam, a))
    assert np.isfinite(std[0]) and np.isinf(std[1:]).all()  # 2: unseen; 3 = 4: degenerate
    batch = cramer_rao_std(
        poisson_fisher_information(np.stack([lam, lam]), np.stack([a[:, :1], a[:, :1]]))
    )
    assert batch.shape == (2, 1) and np.isfinite(batch).all()


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="jacobian: expected shape"):
        poisson_fisher_information(np.ones(3), np.ones((4, 2)))
    with pytest.raises(ValueError, match=">= 0"):
        poisson_fisher_information(np.array([1.0, -1.0]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="roi"):
        poisson_fisher_information(np.ones(3), np.ones((3, 1)), roi=np.ones(2, bool))
    with pytest.raises(ValueError, match="square"):
        cramer_rao_std(np.ones((2, 3)))
    with pytest.raises(ValueError, match="relative_std"):
        efficient_median_relative_error([])


def test_efficient_median_relative_error():
    # one σ for every spectrum: the median of |N(0, σ²)| is σ·Φ⁻¹(3/4)
    assert efficient_median_relative_error([0.02] * 5) == pytest.approx(
        0.02 * stats.norm.ppf(0.75), rel=1e-9
    )
    # a mixture: half the spectra at σ, half at 3σ, by sampling
    s = np.repeat([0.01, 0.03], 500)
    z = np.abs(np.random.default_rng(1).standard_normal((400, s.size))) * s
    assert efficient_median_relative_error(s) == pytest.approx(np.median(z), rel=0.01)
    assert efficient_median_relative_error([0.1, np.inf]) == np.inf
    assert efficient_median_relative_error([0.0, 0.0, 0.1]) == 0.0


def test_thin_rbs_film_is_known_to_one_over_root_peak_counts():
    """1 TFU Au: the peak only scales with the areal density (its width is the detector's),
    so the bound is the counting statistics of the peak area, 1/sqrt(N); slightly below
    it, as the peak also widens with the thickness."""
    setup = Setup(
        ion="4He",
        beam_energy_keV=2000.0,
        scattering_deg=170.0,
        detector=Detector(channels=2200, gain_keV_per_channel=1.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=100.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    sim = RBSSimulator(setup, [["Au"]], device="cpu")
    y = torch.tensor([[1.0]], dtype=torch.float64)
    lam, jac = torch.func.jvp(sim.simulate, (y,), (torch.ones_like(y),))
    std = cramer_rao_std(poisson_fisher_information(lam.numpy(), jac.numpy()[..., None]))
    n = float(lam.sum())
    assert n > 100
    assert std[0, 0] / 1.0 == pytest.approx(1 / np.sqrt(n), rel=1e-3)
    assert std[0, 0] < 1 / np.sqrt(n)


def test_information_table_compares_methods_on_the_same_spectra():
    true = np.array([[100.0, 200.0], [300.0, 400.0], [500.0, 600.0]])
    bounds = xr.Dataset(
        {
            "crlb_std": (("sample", "param"), [[1.0, np.inf], [3.0, np.inf], [5.0, 40.0]]),
            "true": (("sample", "param"), true),
        },
        coords={"sample": [7, 8, 9], "param": ["a", "b"]},
    )

    def fit(factor, samples):
        rows = [s - 7 for s in samples]
        return xr.Dataset(
            {
                "estimate": (("sample", "param"), true[rows] * factor),
                "true": (("sample", "param"), true[rows]),
            },
            coords={"sample": samples, "param": ["a", "b"]},
        )

    table = information_table(bounds, {"LM": fit(1.02, [7, 8, 9]), "NM": fit(1.05, [7, 8])})
    assert table.loc["a", "CRLB_relative_std"] == pytest.approx(0.01)
    assert table.loc["a", "efficient_MRE"] == pytest.approx(0.01 * stats.norm.ppf(0.75))
    assert table.loc["b", "undetermined"] == pytest.approx(2 / 3)
    assert table.loc["b", "CRLB_relative_std"] == np.inf
    assert table.loc["a", "MRE LM"] == pytest.approx(0.02)
    assert table.loc["a", "MRE NM (2 spectra)"] == pytest.approx(0.05)
