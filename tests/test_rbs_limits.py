"""Samples and setups at the edges of what the simulator covers: said so, never a crash."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.autograd import forward_ad

from specinv.physics.rbs import Detector, RBSSimulator, Setup


def oxygen_beam(structure, dtype=torch.float64) -> RBSSimulator:
    """10 MeV 16O at 165 deg: deuterium (2 u) cannot scatter it backwards, gold can."""
    setup = Setup(
        ion="16O",
        beam_energy_keV=10000.0,
        scattering_deg=165.0,
        detector=Detector(channels=512, gain_keV_per_channel=20.0, resolution_fwhm_keV=30.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=500.0,
    )
    return RBSSimulator(setup, structure, device="cpu", dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_sample_that_cannot_scatter_backwards_gives_a_differentiable_zero_spectrum(dtype):
    with pytest.warns(
        UserWarning,
        match=r"nothing in the sample can scatter the 16O beam \(15\.99 u\) into the detector "
        r"at 165 deg: .*at most asin\(m_target/m_ion\), here sample\.layers\[0\]\.D "
        r"\(2\.014 u\): 7\.23 deg, sample\.layers\[1\]\.D \(2\.014 u\): 7\.23 deg",
    ):
        sim = oxygen_beam([["D"], ["D"]], dtype)
    assert sim.reactions == ()
    for shape in ((2,), (3, 2)):  # one sample, a batch
        p = torch.full(shape, 1000.0, dtype=dtype, requires_grad=True)
        y = sim.simulate(p)
        assert y.shape == (*shape[:-1], 512)
        assert y.dtype == dtype and y.device == p.device
        assert y.requires_grad and bool((y == 0).all())
        y.sum().backward()
        assert torch.equal(p.grad, torch.zeros_like(p))
        with forward_ad.dual_level():
            dual = forward_ad.make_dual(p.detach(), torch.ones_like(p))
            tangent = forward_ad.unpack_dual(sim.simulate(dual)).tangent
        assert tangent is not None and tangent.shape == y.shape and bool((tangent == 0).all())
    # without derivatives to track, plain zeros
    assert not sim.simulate([1000.0, 10.0]).requires_grad


def test_elements_that_cannot_scatter_backwards_still_slow_the_beam():
    """Deuterium beside (or above) gold gives no counts of its own but slows the beam: no
    warning, a finite non-zero derivative; the partial spectrum of a deuterium layer alone is
    a differentiable zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = oxygen_beam([["D", "Au"]])
        stacked = oxygen_beam([["D"], ["Au"], ["D"]])
    p = torch.tensor([1000.0, 100.0], dtype=torch.float64, requires_grad=True)
    mixed.simulate(p).sum().backward()
    assert torch.isfinite(p.grad).all() and float(p.grad[0]) != 0.0
    q = torch.tensor([1000.0, 100.0, 1000.0], dtype=torch.float64, requires_grad=True)
    stacked.simulate(q).sum().backward()
    assert float(q.grad[0]) != 0.0 and float(q.grad[2]) == 0.0
    deep = stacked.simulate(q, first_layer=2)
    assert deep.requires_grad and bool((deep == 0).all())
    q.grad = None
    deep.sum().backward()
    assert torch.equal(q.grad, torch.zeros_like(q))
