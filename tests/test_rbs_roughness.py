"""Layer roughness: the Gauss quadrature of the Gamma thickness distribution against its
analytic moments, rough spectra against a fine direct average over the distribution, and
derivatives with respect to thickness and roughness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import assert_forward_mode_matches_central_differences
from specinv.physics.rbs import Detector, RBSSimulator, Setup
from specinv.physics.rbs.roughness import gamma_quadrature, rough_samples
from specinv.techniques.rbs.fitmodel import LayerModel, RBSFitModel


@pytest.mark.parametrize("relative_sigma", [0.05, 0.3, 0.8, 1.0, 1.6])
@pytest.mark.parametrize("n", [2, 5, 12])
def test_quadrature_reproduces_the_gamma_moments(relative_sigma, n):
    s = torch.tensor([relative_sigma], dtype=torch.float64)
    nodes, weights = gamma_quadrature(s, n)
    assert (weights > 0).all() and (nodes > 0).all()
    assert torch.all(nodes[0, 1:] > nodes[0, :-1])
    shape = 1.0 / relative_sigma**2
    for k in range(2 * n):
        # E[x^k] of the Gamma distribution of mean 1: Π_{i<k} (α + i) / α
        exact = math.prod((shape + i) / shape for i in range(k))
        got = float((weights * nodes**k).sum())
        assert got == pytest.approx(exact, rel=1e-10), k


def test_a_smooth_layer_has_every_node_at_its_thickness():
    nodes, weights = gamma_quadrature(torch.zeros(1, dtype=torch.float64), 6)
    torch.testing.assert_close(nodes, torch.ones_like(nodes))
    assert float(weights.sum()) == pytest.approx(1.0)


def au_on_si() -> RBSSimulator:
    setup = Setup(
        ion="4He",
        beam_energy_keV=2000.0,
        scattering_deg=165.0,
        detector=Detector(channels=500, gain_keV_per_channel=4.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=200.0,
    )
    return RBSSimulator(setup, [["Au"], ["Si"]], device="cpu", dtype=torch.float64)


def direct_average(sim, thickness, sigma, cells=2000):
    """The spectrum of Au (Gamma-distributed thickness) on Si averaged over ``cells`` thin
    cells of the distribution (the way SIMNRA and JaBS average, with fine cells)."""
    shape, scale = (thickness / sigma) ** 2, sigma**2 / thickness
    edges = np.linspace(0.0, stats.gamma.ppf(1 - 1e-9, shape, scale=scale), cells + 1)
    p = np.diff(stats.gamma.cdf(edges, shape, scale=scale))
    mid = 0.5 * (edges[1:] + edges[:-1])
    grid = torch.tensor([[t, 50000.0] for t in mid], dtype=torch.float64)
    return (sim.simulate(grid) * torch.tensor(p / p.sum())[:, None]).sum(0)


@pytest.mark.parametrize(
    ("thickness", "sigma", "expected_points"), [(300.0, 60.0, 16), (300.0, 240.0, 128)]
)
def test_rough_spectrum_is_the_average_over_the_gamma_distribution(
    thickness, sigma, expected_points
):
    """A mild and a strong roughness (the signal spread over ~30 resolution widths): the
    fit model's automatic number of quadrature nodes against a direct average."""
    sim = au_on_si()
    layers = [LayerModel(thickness, {"Au": 1.0}, sigma), LayerModel(50000.0, {"Si": 1.0})]
    model = RBSFitModel(sim.setup, layers, [])
    assert model.roughness_points == expected_points
    rough = model.simulate(np.zeros((1, 0)))[0]
    direct = direct_average(sim, thickness, sigma)
    smooth = sim.simulate(torch.tensor([thickness, 50000.0], dtype=torch.float64))
    chi2 = float((((rough - direct) ** 2) / (direct + 1)).sum())
    assert chi2 < 0.05, chi2
    # roughness changes the spectrum by far more than the quadrature's error
    assert float((((rough - smooth) ** 2) / (smooth + 1)).sum()) > 1e4 * max(chi2, 1e-3)


def test_derivatives_with_respect_to_thickness_and_roughness():
    sim = au_on_si()

    def spectrum(x):  # x = (Au thickness, its σ)
        amounts = torch.stack([x[0], torch.tensor(50000.0, dtype=x.dtype)])[None]
        samples, weights = rough_samples(amounts, [[0]], x[1].reshape(1, 1), 8)
        return (sim.simulate(samples).view(1, 8, -1) * weights[..., None]).sum(1)[0]

    x0 = torch.tensor([300.0, 90.0], dtype=torch.float64)
    assert_forward_mode_matches_central_differences(spectrum, x0, [1e-5, 1e-5], 1e-4)


def test_rough_samples_checks_the_roughness_shape():
    with pytest.raises(ValueError, match=r"sigma_tfu: expected shape \(1, 1\)"):
        rough_samples(torch.ones(1, 2), [[0]], torch.ones(2, 1), 4)
