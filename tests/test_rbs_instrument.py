"""Per-spectrum fluence, calibration and resolution (:class:`Instrument`): the same spectra
as a simulator built with those values, and derivatives that match finite differences."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import assert_forward_mode_matches_central_differences
from specinv.physics.rbs import Detector, Instrument, PhysicsOptions, RBSSimulator, Setup

AMOUNTS = torch.tensor([30.0, 4000.0, 8000.0, 20000.0], dtype=torch.float64)


def au_sio2_setup(**detector) -> Setup:
    det = {"channels": 1200, "gain_keV_per_channel": 1.72, "resolution_fwhm_keV": 12.0}
    det.update(detector)
    return Setup(
        ion="4He",
        beam_energy_keV=2027.0,
        scattering_deg=160.0,
        detector=Detector(offset_keV=det.pop("offset_keV", 10.0), **det),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=150.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )


def simulator(setup: Setup) -> RBSSimulator:
    # Au (one isotope) over SiO2 over Si: isotope merging does not depend on the resolution
    return RBSSimulator(setup, [["Au"], ["O", "Si"], ["Si"]], device="cpu", dtype=torch.float64)


def test_instrument_matches_a_simulator_built_with_those_values():
    base = simulator(au_sio2_setup())
    values = [(10.0, 1.72, 12.0, 1e11), (25.0, 1.70, 15.0, 2.5e11), (-5.0, 1.75, 9.0, 4e10)]
    columns = zip(*[(q, o, g, r) for o, g, r, q in values], strict=True)
    instrument = Instrument(*(torch.tensor(c, dtype=torch.float64) for c in columns))
    batch = base.simulate(AMOUNTS.expand(len(values), -1), instrument=instrument)
    for row, (offset, gain, fwhm, fluence) in enumerate(values):
        setup = au_sio2_setup(
            offset_keV=offset, gain_keV_per_channel=gain, resolution_fwhm_keV=fwhm
        )
        own = simulator(replace(setup, fluence_times_solid_angle_sr=fluence)).simulate(AMOUNTS)
        assert float(own.sum()) > 1e4
        torch.testing.assert_close(batch[row], own, rtol=1e-10, atol=1e-9 * float(own.max()))


def test_default_instrument_is_the_setup():
    sim = simulator(au_sio2_setup())
    torch.testing.assert_close(
        sim.simulate(AMOUNTS), sim.simulate(AMOUNTS, instrument=Instrument())
    )


def test_instrument_derivatives_match_finite_differences():
    sim = simulator(au_sio2_setup())
    x0 = torch.tensor([1e11, 10.0, 1.72, 12.0], dtype=torch.float64)

    def run(x):
        return sim.simulate(AMOUNTS[None], instrument=Instrument(*(v[None] for v in x)))[0]

    assert_forward_mode_matches_central_differences(run, x0, [1e-6, 1e-4, 1e-7, 1e-5], 1e-4)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("gain_keV_per_channel", 0.0, "> 0"),
        ("resolution_fwhm_keV", -1.0, "> 0"),
        ("fluence_times_solid_angle_sr", float("nan"), ">= 0"),
        ("offset_keV", float("inf"), "finite"),  # any finite offset
    ],
)
def test_bad_instrument_values_are_named(field, value, expected):
    sim = simulator(au_sio2_setup())
    with pytest.raises(ValueError, match=rf"instrument\.{field}\[0\].*{expected}"):
        sim.simulate(AMOUNTS, instrument=Instrument(**{field: value}))


def test_instrument_of_wrong_length_is_refused():
    sim = simulator(au_sio2_setup())
    with pytest.raises(
        ValueError, match=r"instrument\.offset_keV: expected a number or a tensor \[2\]"
    ):
        sim.simulate(AMOUNTS.expand(2, -1), instrument=Instrument(offset_keV=torch.zeros(3)))


def test_pileup_of_a_peak_appears_at_twice_its_energy():
    """A narrow peak at E piles up into one at 2E (plus the offset's share), with the
    counts moved as first-order pile-up says: 2p N removed, p N added."""
    from specinv.physics.rbs.pileup import pileup

    gain, offset = 2.0, 30.0
    counts = torch.zeros(1, 2000, dtype=torch.float64)
    counts[0, 400] = 1000.0  # centre 30 + 2 × 400.5 = 831 keV
    p = torch.tensor([0.01], dtype=torch.float64)
    out = pileup(counts, p, torch.tensor([offset]).double(), torch.tensor([gain]).double())
    assert float(out[0, 400]) == pytest.approx(1000.0 * (1 - 2 * 0.01))
    piled = out[0].clone()
    piled[400] = 0.0
    # the sum 1662 keV is at channel coordinate (1662 - 30) / 2 = 816, i.e. channel 815.5
    assert float(piled.sum()) == pytest.approx(0.01 * 1000.0, rel=1e-9)
    centre = float((piled * torch.arange(2000)).sum() / piled.sum())
    assert centre == pytest.approx(815.5, abs=1e-6)


def test_pileup_and_background_derivatives_and_setup_values():
    sim = simulator(au_sio2_setup())
    x0 = torch.tensor([0.02, 3.0, 40.0], dtype=torch.float64)

    def run(x):
        inst = Instrument(
            pileup_probability=x[0:1], background_counts=x[1:2], background_low_energy_counts=x[2:3]
        )
        return sim.simulate(AMOUNTS[None], instrument=inst)[0]

    assert_forward_mode_matches_central_differences(run, x0, [1e-6] * 3, 1e-5)
    # the same values in the setup give the same spectrum
    setup = au_sio2_setup()
    setup = replace(
        setup,
        detector=replace(setup.detector, pileup_probability=0.02),
        background_counts=3.0,
        background_low_energy_counts=40.0,
    )
    torch.testing.assert_close(simulator(setup).simulate(AMOUNTS), run(x0))
    # the background: flat 3 at high energy, 3 + 40 just above the cut-off
    plain = sim.simulate(AMOUNTS)
    extra = (
        simulator(
            replace(au_sio2_setup(), background_counts=3.0, background_low_energy_counts=40.0)
        ).simulate(AMOUNTS)
        - plain
    )
    assert float(extra[-1]) == pytest.approx(3.0 + 40.0 * (150.0 / (10 + 1.72 * 1199.5)) ** 2)
    assert float(extra[:70].sum()) == 0.0  # below the cut-off at 150 keV


def test_detector_aperture_broadens_a_surface_edge_by_the_kinematic_spread():
    """A thin Au layer: the aperture's spread of angles σ_θ adds (E·dK/dθ·σ_θ)² to the
    variance of its peak (dK/dθ checked against the analytic derivative)."""
    import math

    from specinv.physics.rbs.kinematics import RutherfordChannel, kinematic_slope

    ch = RutherfordChannel.build(2, 4.0026, 79, 196.97, math.radians(160.0))
    r = 4.0026 / 196.97
    t = math.radians(160.0)
    root = math.sqrt(1.0 - (r * math.sin(t)) ** 2)
    # K = ((root + r cos θ) / (1 + r))², dK/dθ = 2 √K (−r² sin θ cos θ / root − r sin θ)/(1 + r)
    exact = (
        2.0
        * math.sqrt(ch.kinematic_factor)
        * (-(r * r) * math.sin(t) * math.cos(t) / root - r * math.sin(t))
        / (1.0 + r)
    )
    assert kinematic_slope(ch) == pytest.approx(exact, rel=1e-6)

    def peak_variance(spread_deg):
        setup = au_sio2_setup()
        setup = replace(setup, detector=replace(setup.detector, angular_spread_fwhm_deg=spread_deg))
        s = RBSSimulator(setup, [["Au"], ["Si"]], dtype=torch.float64).simulate(
            torch.tensor([1.0, 1000.0], dtype=torch.float64)
        )
        e = setup.detector.channel_energy(torch.arange(1200, dtype=torch.float64) + 0.5)
        peak = s * (e > 1700)
        mean = (peak * e).sum() / peak.sum()
        return float((peak * (e - mean) ** 2).sum() / peak.sum())

    sigma_theta = math.radians(3.0) / 2.3548200450309493
    added = (2027.0 * exact * sigma_theta) ** 2
    assert peak_variance(3.0) - peak_variance(0.0) == pytest.approx(added, rel=0.03)
