"""Autograd gradients of the simulator against finite differences, and single against double
precision."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.autograd import forward_ad

from specinv.physics.rbs import Detector, PhysicsOptions, RBSSimulator, Setup, load_experiment

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rbs_W_D_2layers.yaml"


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


@pytest.mark.parametrize(
    ("point", "d"),
    [
        ([1000.0, 3000.0, 0.0, 100.0], 2),  # W at 0 in a thin D layer under W/D
        ([0.0, 100.0, 1000.0, 1000.0], 0),  # W at 0 in a thin D layer on top
        ([0.0, 1e4, 1000.0, 1000.0], 0),  # W at 0 in a thick D layer on top
    ],
)
def test_gradient_at_an_element_of_amount_zero_matches_one_sided_differences(point, d):
    """An element at amount 0 in a layer adds counts as it grows: its derivative is that
    of the counts (one-sided differences, since amounts are >= 0), channel by channel."""
    sim = RBSSimulator.from_experiment(load_experiment(EXAMPLE), device="cpu", dtype=torch.float64)
    p0 = torch.tensor(point, dtype=torch.float64)
    ad = torch.autograd.functional.jacobian(sim.simulate, p0, vectorize=True)[:, d]
    with forward_ad.dual_level():
        tangent = torch.nn.functional.one_hot(torch.tensor(d), 4).to(p0)
        forward = forward_ad.unpack_dual(sim.simulate(forward_ad.make_dual(p0, tangent))).tangent
    assert torch.allclose(forward, ad, rtol=1e-9, atol=1e-9 * float(ad.abs().max()))
    layer = 0 if d < 2 else 1
    h = 1e-5 * sum(point[2 * layer : 2 * layer + 2])  # the layer's thickness sets the scale
    step = torch.zeros_like(p0)
    step[d] = h
    y0, y1, y2 = (sim.simulate(p0 + k * step) for k in range(3))
    fd = (4.0 * y1 - 3.0 * y0 - y2) / (2.0 * h)  # second order, one-sided
    scale = float(fd.abs().max())
    assert scale > 1.0  # the element's counts: a real signal
    err = float((ad - fd).abs().max()) / scale
    assert err < 1e-4, f"{sim.parameter_names[d]} at {point}: max error {err:.2e} of {scale:.3g}"


def three_layer_setup() -> tuple[Setup, list[list[str]]]:
    setup = Setup(
        ion="4He",
        beam_energy_keV=2000.0,
        scattering_deg=170.0,
        detector=Detector(channels=800, gain_keV_per_channel=2.5, resolution_fwhm_keV=18.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=100.0,
    )
    return setup, [["Au", "O"], ["Si", "N"], ["Ni", "C"]]


def float32_grid(case: str):
    """(setup, structure, points): areal densities with zeros (single elements, whole layers,
    everything) and layers from 1e-3 to 1e5 TFU."""
    if case == "example":
        exp = load_experiment(EXAMPLE)
        values = [0.0, 1e-3, 10.0, 100.0, 1e3, 1e5]
        points = torch.tensor(list(itertools.product(values, repeat=4)), dtype=torch.float64)
        return exp.setup, exp.structure, points
    setup, structure = three_layer_setup()
    # per layer: empty, one element at 0, or both present, at 1e-3 ... 1e5 TFU
    layer = [(0.0, 0.0)] + [c for t in (1e-3, 100.0, 1e5) for c in ((0, t), (t, 0), (t, t))]
    points = [sum(combo, ()) for combo in itertools.product(layer, repeat=3)]
    return setup, structure, torch.tensor(points, dtype=torch.float64)


@pytest.mark.parametrize("case", ["example", "three layers"])
def test_float32_gradients_are_finite_and_agree_with_float64(case):
    """Single precision (the default on CUDA) gives finite derivatives wherever the spectrum
    is finite, in reverse and forward mode; where a layer holds enough atoms for single
    precision to resolve its energy loss (>= 100 TFU), the derivatives with respect to its
    elements agree with double precision."""
    setup, structure, points = float32_grid(case)
    weights = torch.rand(
        setup.detector.channels, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    grads = {}
    for dtype in (torch.float32, torch.float64):
        sim = RBSSimulator(setup, structure, device="cpu", dtype=dtype)
        p = points.to(dtype).clone().requires_grad_()
        y = sim.simulate(p)
        assert torch.isfinite(y).all()
        (y * weights.to(dtype)).sum().backward()
        bad = ~torch.isfinite(p.grad).all(1)
        assert not bad.any(), f"{dtype}: non-finite gradient at {points[bad][:5].tolist()}"
        grads[dtype] = p.grad.double()
        with forward_ad.dual_level():
            tangent = torch.ones_like(p.detach())
            jvp = forward_ad.unpack_dual(sim.simulate(forward_ad.make_dual(p.detach(), tangent)))
            assert torch.isfinite(jvp.tangent).all()
    g32, g64 = grads[torch.float32], grads[torch.float64]
    # thickness of each parameter's layer; errors relative to the point's largest derivative
    layer = torch.tensor([i for i, names in enumerate(structure) for _ in names])
    thickness = torch.zeros(len(points), len(structure), dtype=points.dtype)
    thickness = thickness.index_add(1, layer, points)[:, layer]
    scale = g64.abs().amax(1, keepdim=True)
    err = (g32 - g64).abs() / scale
    for least, tolerance in ((100.0, 0.05), (1000.0, 0.01)):
        judged = thickness >= least
        assert judged.any()
        worst = float(err[judged].max())
        assert worst < tolerance, (
            f"layers >= {least} TFU: float32 gradient off by {worst:.2e} of the largest "
            f"float64 derivative (at most {tolerance})"
        )
