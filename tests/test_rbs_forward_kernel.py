"""The compiled forward model (spectra without derivatives) against the torch code (the
derivative path): the same spectra to rounding, on the samples of datasets A, B and C and
with every option that changes the physics or the channel grid."""

from __future__ import annotations

import pytest
import torch

from specinv.physics.rbs import (
    Detector,
    Instrument,
    Numerics,
    PhysicsOptions,
    RBSSimulator,
    Setup,
    forward_kernel,
)

SAMPLES = {
    "A": [["W", "D"], ["W", "D"]],
    "B": [["Li", "C", "O", "F", "Ni"]] * 3,
    "C": [["H", "Li", "C", "O", "Co", "Zr", "La", "Ta"]]
    + [["Li", "C", "O", "Zr", "La", "Ta"]] * 3
    + [["O", "Zr", "La", "Ta"]],
}


def reference_setup(**changes) -> Setup:
    values = dict(
        ion="4He",
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        incidence_deg=0.0,
        detector=Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    values.update(changes)
    return Setup(**values)


def random_amounts(sim: RBSSimulator, n: int, seed: int = 0) -> torch.Tensor:
    """Areal densities in [0, 5000] TFU with absent elements and empty layers."""
    g = torch.Generator().manual_seed(seed)
    x = 5000.0 * torch.rand(n, sim.n_parameters, generator=g, dtype=torch.float64)
    x[::5, 0] = 0.0  # an absent element
    first = len(sim.structure[0])
    x[1::7, :first] = 0.0  # an empty surface layer
    x[2::9, first:] = 0.0  # only the surface layer
    return x


def torch_path(sim: RBSSimulator, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """The spectra of the torch code (taken whenever derivatives are tracked)."""
    return sim.simulate(x.clone().requires_grad_(), **kwargs).detach()


def assert_same_spectra(compiled: torch.Tensor, reference: torch.Tensor, tol: float = 1e-10):
    """Equal to ``tol`` of each spectrum's largest channel, taken as at least 100 counts:
    where next to nothing reaches the detector (1e-5 counts from the nodes of an empty
    layer), the two round differently by up to ~1e-8 counts."""
    assert compiled.shape == reference.shape and compiled.dtype == reference.dtype
    assert torch.isfinite(compiled).all() and (compiled >= 0).all()
    scale = reference.abs().amax(-1, keepdim=True).clamp_min(100.0)
    assert float(((compiled - reference).abs() / scale).max()) < tol
    assert reference.sum() > 0


@pytest.mark.parametrize("sample", ["A", "B", "C"])
def test_the_samples_of_the_datasets(sample):
    sim = RBSSimulator(reference_setup(), SAMPLES[sample], device="cpu")
    x = random_amounts(sim, 24)
    assert_same_spectra(sim.simulate(x), torch_path(sim, x))


@pytest.mark.parametrize(
    "physics",
    [
        PhysicsOptions(screening="none", straggling="none", nuclear_stopping=False),
        PhysicsOptions(screening="lecuyer", straggling="bohr"),
    ],
)
def test_other_physics_and_a_tilted_sample(physics):
    setup = reference_setup(physics=physics, incidence_deg=30.0, scattering_deg=150.0)
    sim = RBSSimulator(setup, [["Au"], ["Si", "O"], ["Si"]], device="cpu")
    x = torch.tensor([[20.0, 800.0, 1600.0, 40000.0], [0.0, 300.0, 0.0, 9000.0]])
    assert_same_spectra(sim.simulate(x), torch_path(sim, x.double()))


def test_partial_spectra_per_spectrum_calibrations_and_electronics():
    detector = Detector(
        channels=900,
        gain_keV_per_channel=2.2,
        resolution_fwhm_keV=18.0,
        offset_keV=-40.0,
        quadratic_keV_per_channel2=1e-4,
        pileup_probability=0.01,
    )
    setup = reference_setup(
        detector=detector,
        beam_spread_fwhm_keV=5.0,
        background_counts=2.0,
        numerics=Numerics(piece_width_keV=40.0),
    )
    sim = RBSSimulator(setup, SAMPLES["B"], device="cpu")
    x = random_amounts(sim, 6, seed=1)
    instrument = Instrument(
        offset_keV=torch.linspace(-60.0, 30.0, 6, dtype=torch.float64),
        gain_keV_per_channel=torch.linspace(2.0, 2.6, 6, dtype=torch.float64),
        resolution_fwhm_keV=torch.linspace(12.0, 25.0, 6, dtype=torch.float64),
        fluence_times_solid_angle_sr=torch.linspace(5e10, 2e11, 6, dtype=torch.float64),
    )
    for first_layer in (0, 1, 2):
        compiled = sim.simulate(x, first_layer=first_layer, instrument=instrument)
        assert_same_spectra(
            compiled, torch_path(sim, x, first_layer=first_layer, instrument=instrument)
        )


def test_spectra_do_not_depend_on_the_batch_or_the_threads():
    sim = RBSSimulator(reference_setup(), SAMPLES["C"], device="cpu")
    x = random_amounts(sim, 5, seed=2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = sim.simulate(x)
        torch.set_num_threads(2)
        two = sim.simulate(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert torch.equal(sim.simulate(x[3]), one[3])


def test_which_path_a_simulation_takes(monkeypatch):
    """The compiled model serves float64 spectra on a CPU without tracked derivatives;
    derivatives (reverse and forward mode) and float32 take the torch code."""
    calls = []
    original = forward_kernel.simulate_spectra

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(forward_kernel, "simulate_spectra", counting)
    sim = RBSSimulator(reference_setup(), SAMPLES["A"], device="cpu")
    x = torch.tensor([400.0, 100.0, 2000.0, 50.0], dtype=torch.float64)
    sim.simulate(x)
    assert len(calls) == 1
    sim.simulate(x.clone().requires_grad_())
    with torch.autograd.forward_ad.dual_level():
        sim.simulate(torch.autograd.forward_ad.make_dual(x, torch.ones_like(x)))
    RBSSimulator(reference_setup(), SAMPLES["A"], device="cpu", dtype=torch.float32).simulate(x)
    assert len(calls) == 1


def test_serial_and_parallel_kernels_are_separate_functions():
    """numba's disk cache keys a function's compilations by argument types and bytecode
    alone: one Python function compiled serial and parallel would load the other's code
    (a one-thread run on all threads, or the reverse)."""
    from specinv.physics.rbs import spectrum_kernel

    pairs = [
        (forward_kernel._spectra_serial, forward_kernel._spectra_parallel),
        (spectrum_kernel._cumulative_serial, spectrum_kernel._cumulative_parallel),
    ]
    for serial, parallel in pairs:
        assert serial.py_func.__qualname__ != parallel.py_func.__qualname__
        assert not serial.targetoptions.get("parallel") and parallel.targetoptions["parallel"]
