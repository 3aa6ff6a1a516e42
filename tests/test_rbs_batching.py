"""Batched simulation: every sample's spectrum is independent of its batch companions."""

from __future__ import annotations

import pytest
import torch

from specinv.physics.rbs import Detector, PhysicsOptions, RBSSimulator, Setup, poisson_noise

LAYERS = [["Li", "C", "O", "F", "Ni"], ["Li", "C", "O", "F", "Ni"], ["W", "O"]]


@pytest.fixture(scope="module")
def sim() -> RBSSimulator:
    setup = Setup(
        ion="4He",
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        detector=Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
        physics=PhysicsOptions(),
    )
    return RBSSimulator(setup, LAYERS, device="cpu")


def prior_draws(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 50.0 + 4950.0 * torch.rand(n, d, generator=g, dtype=torch.float64)


def test_results_do_not_depend_on_the_batch(sim):
    p = prior_draws(40, sim.n_parameters, 0)
    together = sim.simulate(p)
    alone = torch.stack([sim.simulate(p[i]) for i in range(0, 40, 7)])
    # bit for bit, alone and in a batch, and in a batch of other samples in another order
    assert torch.equal(alone, together[0:40:7])
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sim.simulate(p[perm]), together[perm])
    mixed = torch.cat([prior_draws(13, sim.n_parameters, 2), p[:5]])
    assert torch.equal(sim.simulate(mixed)[13:], together[:5])
    deep = sim.simulate(p, first_layer=1)  # partial spectra too
    assert torch.equal(sim.simulate(p[perm], first_layer=1), deep[perm])


def test_deeper_layers_leave_the_upper_part_of_the_spectrum_alone(sim):
    """The counts from layers above l do not depend on the parameters of layers >= l, and
    the partial spectra of layers >= l change only with those."""
    p = prior_draws(6, sim.n_parameters, 3)
    first = [0] * 5 + [1] * 5 + [2] * 2
    for layer in (1, 2):
        q = p.clone()
        deeper = torch.tensor([f >= layer for f in first])
        q[:, deeper] *= 0.7
        upper_p = sim.simulate(p) - sim.simulate(p, first_layer=layer)
        upper_q = sim.simulate(q) - sim.simulate(q, first_layer=layer)
        assert float((upper_p - upper_q).abs().max()) < 1e-9 * float(upper_p.max())
        assert (
            float(
                (sim.simulate(p, first_layer=layer) - sim.simulate(q, first_layer=layer))
                .abs()
                .max()
            )
            > 1.0
        )


def test_output_shape_and_sanity(sim):
    p = prior_draws(3, sim.n_parameters, 3)
    y = sim.simulate(p)
    assert y.shape == (3, 1024) and y.dtype == torch.float64
    assert torch.isfinite(y).all() and (y >= 0).all()
    assert sim.simulate(p[0]).shape == (1024,)
    # nothing above the highest kinematic edge (W: K·E0 ≈ 2770 keV) + 5 σ
    assert float(y[:, 950:].abs().max()) < 1e-6
    assert len(sim.parameter_names) == sim.n_parameters == 12


def test_poisson_noise_is_reproducible_and_unbiased(sim):
    y = sim.simulate(prior_draws(1, sim.n_parameters, 4))[0]
    a = poisson_noise(y, seed=7)
    assert torch.equal(a, poisson_noise(y, seed=7))
    assert not torch.equal(a, poisson_noise(y, seed=8))
    assert torch.equal(a, a.round()) and (a >= 0).all()
    draws = torch.stack([poisson_noise(y, seed=s) for s in range(200)])
    # sum over channels: mean within 4 standard errors, variance equal to the mean
    total, expected = draws.sum(1), float(y.sum())
    assert abs(float(total.mean()) - expected) < 4 * (expected / 200) ** 0.5
    assert float(total.var()) == pytest.approx(expected, rel=0.3)
    with pytest.raises(ValueError, match="finite and >= 0"):
        poisson_noise(torch.tensor([1.0, -1.0]))


def test_float32_matches_float64(sim):
    """Single precision (the default on GPUs) stays far below counting noise."""
    single = RBSSimulator(sim.setup, LAYERS, device="cpu", dtype=torch.float32)
    p = prior_draws(32, sim.n_parameters, 6)
    ref = sim.simulate(p)
    out = single.simulate(p.float()).double()
    assert float(((out - ref) / (ref + 1).sqrt()).abs().max()) < 0.05


@pytest.mark.gpu
def test_cuda_float32_matches_cpu_float64(sim):
    gpu = RBSSimulator(sim.setup, LAYERS, device="cuda")
    p = prior_draws(64, sim.n_parameters, 5)
    ref = sim.simulate(p)
    out = gpu.simulate(p.to("cuda", torch.float32)).double().cpu()
    z = (out - ref) / (ref + 1).sqrt()
    assert float(z.abs().max()) < 0.05
