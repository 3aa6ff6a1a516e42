"""Mixture density network: likelihood, moments, shapes, robustness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specinv.models import (
    PAPER_ARCHITECTURES,
    CNNConfig,
    MDNConfig,
    MixtureDensityNetwork,
    mixture_covariance,
    mixture_log_prob,
    mixture_mean,
    mixture_nll,
    mixture_sample,
    mixture_variance,
    model_kind,
)


def random_mixture(b: int, m: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    log_pi = torch.log_softmax(torch.randn(b, m, generator=g, dtype=torch.float64), -1)
    mu = torch.randn(b, m, d, generator=g, dtype=torch.float64)
    sigma = 0.1 + torch.rand(b, m, d, generator=g, dtype=torch.float64)
    return log_pi, mu, sigma


@pytest.mark.parametrize(("m", "d"), [(1, 1), (1, 4), (3, 2), (8, 15)])
def test_nll_equals_direct_numpy_computation(m, d):
    log_pi, mu, sigma = random_mixture(5, m, d, seed=m + d)
    y = torch.randn(5, d, dtype=torch.float64)
    pi, mu_n, s_n, y_n = log_pi.exp().numpy(), mu.numpy(), sigma.numpy(), y.numpy()
    density = np.zeros(5)
    for k in range(m):
        comp = np.prod(
            np.exp(-0.5 * ((y_n - mu_n[:, k]) / s_n[:, k]) ** 2) / (np.sqrt(2 * np.pi) * s_n[:, k]),
            axis=1,
        )
        density += pi[:, k] * comp
    assert np.allclose(mixture_log_prob(log_pi, mu, sigma, y).numpy(), np.log(density), rtol=1e-12)
    assert float(mixture_nll(log_pi, mu, sigma, y)) == pytest.approx(
        -np.log(density).mean(), rel=1e-12
    )


def test_log_sum_exp_keeps_far_outliers_finite():
    log_pi, mu, sigma = random_mixture(2, 3, 2)
    y = torch.full((2, 2), 1e4, dtype=torch.float64)  # density underflows to 0
    lp = mixture_log_prob(log_pi, mu, sigma, y)
    assert torch.isfinite(lp).all() and (lp < -1e6).all()


def test_moments_agree_with_monte_carlo():
    log_pi, mu, sigma = random_mixture(3, 4, 3, seed=7)
    draws = mixture_sample(
        log_pi, mu, sigma, 400_000, generator=torch.Generator().manual_seed(1)
    )  # [n, 3, 3]
    assert draws.shape == (400_000, 3, 3)
    mean, var = mixture_mean(log_pi, mu), mixture_variance(log_pi, mu, sigma)
    cov = mixture_covariance(log_pi, mu, sigma)
    mc_mean = draws.mean(0)
    centred = draws - mc_mean
    mc_cov = torch.einsum("nbi,nbj->bij", centred, centred) / draws.shape[0]
    scale = var.sqrt()
    assert torch.allclose(mc_mean, mean, atol=0.01 * float(scale.max()))
    assert torch.allclose(torch.diagonal(cov, dim1=-2, dim2=-1), var, rtol=1e-12)
    assert torch.allclose(mc_cov, cov, atol=0.02 * float(var.max()))
    # the covariance is symmetric positive definite
    assert torch.allclose(cov, cov.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(cov) > 0).all()


@pytest.mark.parametrize(("arch", "m", "d"), [("A", 1, 4), ("B", 8, 15), ("C", 10, 31)])
def test_output_shapes(arch, m, d):
    net = MixtureDensityNetwork(
        MDNConfig(input_length=230, n_params=d, **PAPER_ARCHITECTURES[arch])
    )
    log_pi, mu, sigma = net(torch.randn(7, 230))
    assert log_pi.shape == (7, m) and mu.shape == sigma.shape == (7, m, d)
    assert torch.allclose(log_pi.exp().sum(-1), torch.ones(7), atol=1e-6)
    assert (sigma >= net.cfg.sigma_min).all()


@pytest.mark.parametrize("arch", ["A", "B"])
def test_no_nan_on_adversarial_inputs(arch):
    torch.manual_seed(0)
    d = 4 if arch == "A" else 15
    net = MixtureDensityNetwork(
        MDNConfig(input_length=200, n_params=d, **PAPER_ARCHITECTURES[arch])
    )
    y = torch.rand(4, d)
    inputs = {
        "zeros": torch.zeros(4, 200),
        "huge": torch.full((4, 200), 1e12),
        "mixed": torch.cat([torch.zeros(2, 200), torch.full((2, 200), -1e12)]),
    }
    for name, x in inputs.items():
        net.zero_grad()
        loss = mixture_nll(*net(x), y)
        loss.backward()
        assert math.isfinite(float(loss.detach())), name
        assert all(torch.isfinite(p.grad).all() for p in net.parameters()), name


def test_bad_architectures_are_rejected():
    with pytest.raises(ValueError, match="same, non-zero length"):
        MDNConfig(input_length=100, n_params=2, filters=(8, 8), kernels=(3,), strides=(1, 1))
    with pytest.raises(ValueError, match="model.components"):
        MDNConfig(input_length=100, n_params=2, components=0)


def test_the_xrd_papers_cnn_has_its_described_shape():
    """Boulle & Debelle 2023: 1001 points -> a 4 x 128 map (flattened to 512) -> dense 1000
    -> ... -> 14 outputs, ~1.104e6 trainable parameters."""
    kind = model_kind("cnn")
    net = kind.build(kind.architecture({"architecture": "boulle2023"}), 1001, 14)
    assert net.cnn(torch.zeros(3, 1, 1001)).shape == (3, 128, 4)
    assert net.head[0].in_features == 512 and net.head[0].out_features == 1000
    n = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert abs(n - 1.104e6) / 1.104e6 < 0.01
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 4
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in net.modules()) == 4
    net.eval()
    assert net(torch.randn(5, 1001)).shape == (5, 14)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"block": 3}, "model.block: expected 0 or a divisor of the 4 convolutions"),
        ({"batch_norm": True}, "model.batch_norm: needs blocks"),
        ({"negative_slope": -0.1}, "model.negative_slope: expected >= 0"),
    ],
)
def test_bad_cnn_blocks_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        CNNConfig(input_length=100, n_outputs=2, **fields)
