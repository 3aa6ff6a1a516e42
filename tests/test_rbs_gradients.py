"""Autograd gradients of the simulator against central finite differences."""

from __future__ import annotations

import pytest
import torch

from specinv.physics.rbs import Detector, PhysicsOptions, RBSSimulator, Setup


def two_layer_simulator() -> RBSSimulator:
    setup = Setup(
        ion="4He",
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        detector=Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    return RBSSimulator(setup, [["Ni", "O"], ["Si", "Au"]], device="cpu", dtype=torch.float64)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_gradients_match_finite_differences():
    sim = two_layer_simulator()
    p0 = torch.tensor([800.0, 1200.0, 3000.0, 40.0], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(sim.simulate, p0, vectorize=True)  # [C, D]
    assert torch.isfinite(jac).all()
    # forward mode gives the same derivatives
    fwd = torch.autograd.functional.jacobian(
        sim.simulate, p0, vectorize=True, strategy="forward-mode"
    )
    assert torch.allclose(fwd, jac, rtol=1e-9, atol=1e-9 * float(jac.abs().max()))
    for d in range(len(p0)):
        h = 1e-6 * float(p0[d])
        up, down = p0.clone(), p0.clone()
        up[d] += h
        down[d] -= h
        fd = (sim.simulate(up) - sim.simulate(down)) / (2 * h)
        ad = jac[:, d]
        scale = fd.abs().max()
        assert scale > 0
        # every channel, relative to the largest derivative of this parameter
        err = ((ad - fd).abs() / scale).max()
        assert err < 1e-4, f"parameter {sim.parameter_names[d]}: max relative error {err:.2e}"
        # and channel by channel where the derivative is not tiny
        big = fd.abs() > 1e-3 * scale
        rel = ((ad - fd).abs()[big] / fd.abs()[big]).max()
        assert rel < 1e-4, f"parameter {sim.parameter_names[d]}: channel error {rel:.2e}"


def test_batched_gradients_flow_to_every_sample():
    sim = two_layer_simulator()
    p = torch.tensor(
        [[800.0, 1200.0, 3000.0, 40.0], [500.0, 500.0, 500.0, 5.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    sim.simulate(p).sum().backward()
    assert torch.isfinite(p.grad).all()
    assert (p.grad.abs() > 0).all()
