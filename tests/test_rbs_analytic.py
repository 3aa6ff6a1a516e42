"""Analytic checks of the RBS simulator: kinematics, thin-film areas, thick-target heights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specinv.physics.rbs import Detector, Numerics, PhysicsOptions, RBSSimulator, Setup
from specinv.physics.rbs.constants import E2_KEV_CM
from specinv.physics.rbs.isotopes import species
from specinv.physics.rbs.kinematics import (
    RutherfordChannel,
    andersen_factor,
    cross_section,
    kinematic_factors,
)

AU197 = species("197Au").isotopes[0].mass_u
HE4 = species("4He").isotopes[0].mass_u
SI28 = species("28Si").isotopes[0].mass_u


def setup(**kw) -> Setup:
    args = dict(
        ion="4He",
        beam_energy_keV=2000.0,
        scattering_deg=170.0,
        detector=Detector(channels=2200, gain_keV_per_channel=1.0, resolution_fwhm_keV=12.0),
        fluence_times_solid_angle_sr=1e10,
        energy_cutoff_keV=100.0,
        physics=PhysicsOptions(screening="none", straggling="none"),
    )
    args.update(kw)
    return Setup(**args)


# ---------------------------------------------------------------------------- kinematics
def test_kinematic_factor_closed_forms():
    theta = math.radians(170.0)
    (k,) = kinematic_factors(HE4, AU197, theta)
    r = HE4 / AU197
    expected = ((r * math.cos(theta) + math.sqrt(1 - (r * math.sin(theta)) ** 2)) / (1 + r)) ** 2
    assert k == pytest.approx(expected, rel=1e-14)
    # head-on: K = ((M2 − M1)/(M2 + M1))²
    (k180,) = kinematic_factors(HE4, SI28, math.pi)
    assert k180 == pytest.approx(((SI28 - HE4) / (SI28 + HE4)) ** 2, rel=1e-12)


def test_light_targets_do_not_backscatter_heavier_ions():
    # 4He on 2H: maximum lab angle asin(M2/M1) = 30°; two branches below it, none above
    d = species("D").isotopes[0].mass_u
    assert kinematic_factors(HE4, d, math.radians(165.0)) == ()
    assert kinematic_factors(HE4, d, math.radians(35.0)) == ()
    assert len(kinematic_factors(HE4, d, math.radians(20.0))) == 2


def test_rutherford_against_textbook_formula():
    theta = math.radians(150.0)
    ch = RutherfordChannel.build(2, HE4, 79, AU197, theta)
    e = 2000.0
    r = HE4 / AU197
    root = math.sqrt(1 - (r * math.sin(theta)) ** 2)
    # lab-frame Rutherford (e.g. Chu, Mayer & Nicolet, eq. 2.21), cm²/sr
    lab = (
        (2 * 79 * E2_KEV_CM / (4 * e)) ** 2
        * 4
        / math.sin(theta) ** 4
        * (root + math.cos(theta)) ** 2
        / root
    )
    assert cross_section(ch, e, "none") * 1e-27 == pytest.approx(lab, rel=1e-12)
    # screening lowers it, less at higher energy
    f1, f2 = andersen_factor(ch, 1000.0), andersen_factor(ch, 3000.0)
    assert 0.95 < f1 < f2 < 1.0


def test_surface_edge_energy():
    """The half-height of a thick Au target's front edge is at K·E0 (within 0.1 keV)."""
    s = setup(detector=Detector(channels=4400, gain_keV_per_channel=0.5, resolution_fwhm_keV=4.0))
    sim = RBSSimulator(s, [["Au"]], device="cpu")
    counts = sim.simulate([20000.0]).numpy()
    (k,) = kinematic_factors(HE4, AU197, math.radians(170.0))
    energy = 0.5 * (np.arange(4400) + 0.5)  # channel centres
    plateau = counts[(energy > k * 2000 - 40) & (energy < k * 2000 - 25)].mean()
    above = np.nonzero(counts > 0.5 * plateau)[0][-1]  # last channel above half height
    e_half = np.interp(
        0.5 * plateau, [counts[above + 1], counts[above]], [energy[above + 1], energy[above]]
    )
    assert e_half == pytest.approx(k * 2000.0, abs=0.1)


# ---------------------------------------------------------------------------- yields
def test_thin_film_area():
    """10 TFU Au: peak area = Q·Ω·σ(E0)·Nt/cos α within 0.2 %."""
    for alpha, geometry in ((0.0, "IBM"), (30.0, "IBM")):
        s = setup(
            incidence_deg=alpha,
            geometry=geometry,
            scattering_deg=160.0,
            physics=PhysicsOptions(screening="andersen", straggling="bohr"),
        )
        sim = RBSSimulator(s, [["Au"]], device="cpu")
        area = float(sim.simulate([10.0]).sum())
        ch = RutherfordChannel.build(2, HE4, 79, AU197, math.radians(160.0))
        expected = (
            1e10
            * cross_section(ch, 2000.0, "andersen")
            * 1e-27
            * 10e15
            / math.cos(math.radians(alpha))
        )
        assert area == pytest.approx(expected, rel=2e-3)


def test_thick_target_surface_height():
    """Thick Si: height just below the edge = Q·Ω·σ(E0)·ΔE / (cos α · [S]₀) within 1 %,
    with [S]₀ = K·S(E0)/cos α + S(K·E0)/cos β (surface-energy approximation)."""
    gain = 1.0
    s = setup(
        detector=Detector(channels=2200, gain_keV_per_channel=gain, resolution_fwhm_keV=0.3),
        incidence_deg=10.0,
        scattering_deg=165.0,
    )
    sim = RBSSimulator(s, [["28Si"]], device="cpu")
    counts = sim.simulate([200000.0]).numpy()
    # the simulator's own stopping of 28Si (per atom) at E0 and K·E0
    table = sim._stop_species[0].numpy()
    energies = np.exp(sim._u0 + sim._h * np.arange(table.size))
    stop = lambda e: float(np.interp(np.log(e), np.log(energies), table))  # noqa: E731
    cos_a, cos_b = math.cos(math.radians(10.0)), math.cos(math.radians(s.exit_angle_deg))
    (k,) = kinematic_factors(HE4, SI28, math.radians(165.0))
    ch = RutherfordChannel.build(2, HE4, 14, SI28, math.radians(165.0))
    e0 = 2000.0
    eps = k * stop(e0) / cos_a + stop(k * e0) / cos_b
    expected = 1e10 * cross_section(ch, e0, "none") * 1e-12 * gain / (cos_a * eps)
    edge_channel = int(k * e0 / gain)
    # 2 channels below the edge: 2 keV deep in energy, a few TFU in depth
    assert counts[edge_channel - 2] == pytest.approx(expected, rel=1e-2)
    assert counts[edge_channel - 2] == pytest.approx(expected, rel=2e-3)


def test_counts_scale_with_fluence_and_thin_layer_thickness():
    base = RBSSimulator(setup(), [["Au"], ["Si"]], device="cpu")
    twice = RBSSimulator(setup(fluence_times_solid_angle_sr=2e10), [["Au"], ["Si"]], device="cpu")
    p = torch.tensor([[5.0, 100.0]], dtype=torch.float64)
    assert torch.allclose(twice.simulate(p), 2 * base.simulate(p), rtol=1e-12, atol=1e-9)
    au_only = lambda t: float(base.simulate(torch.tensor([[t, 0.0]])).sum())  # noqa: E731
    # thin layers: the energy loss is a small difference of ranges (ΔR ≪ R), so this
    # checks that range look-ups and their inverse agree far below the 1e-4 level (the
    # remaining 5e-5 is physical: σ ∝ 1/E² grows as the beam slows down)
    assert au_only(2.0) == pytest.approx(2 * au_only(1.0), rel=1e-4)
    assert 10 * au_only(0.1) == pytest.approx(au_only(1.0), rel=1e-4)


def test_partial_spectra_of_the_deeper_layers():
    """``first_layer``: 10 TFU Au on 5000 TFU ²⁸Si.  From layer 2 on only the Si signal is
    left (nothing above the Si surface edge K_Si·E0); the rest is the thin-film Au peak, which
    the Si layer's thickness does not change."""
    sim = RBSSimulator(
        setup(physics=PhysicsOptions(screening="andersen", straggling="bohr")),
        [["Au"], ["28Si"]],
        device="cpu",
    )
    assert sim.reaction_share(0) == 1.0 and 0.0 < sim.reaction_share(1) < 1.0
    p = torch.tensor([[10.0, 5000.0], [10.0, 2000.0]], dtype=torch.float64)
    whole, deep = sim.simulate(p), sim.simulate(p, first_layer=1)
    energy = np.arange(2200) + 0.5  # channel centres, keV
    (k_si,) = kinematic_factors(HE4, SI28, math.radians(170.0))
    below_edge = (energy > k_si * 2000.0 - 100) & (energy < k_si * 2000.0 - 50)
    assert float(deep[:, below_edge].min()) > 10.0
    assert float(deep[:, energy > k_si * 2000.0 + 30].abs().max()) < 1e-6  # Gauss tail
    top = (whole - deep).numpy()
    ch = RutherfordChannel.build(2, HE4, 79, AU197, math.radians(170.0))
    area = 1e10 * cross_section(ch, 2000.0, "andersen") * 1e-27 * 10e15
    assert top[0].sum() == pytest.approx(area, rel=2e-3)
    np.testing.assert_allclose(top[1], top[0], rtol=0, atol=1e-9 * top.max())
    assert float((deep[1] - deep[0]).abs().max()) > 10.0  # the Si layer ends earlier


def test_numerics_converge():
    """Halving the piece width changes a thick multilayer spectrum by far less than noise."""
    layers = [["Ni", "O"], ["Si"]]
    p = [2000.0, 1500.0, 80000.0]
    coarse = RBSSimulator(setup(), layers, device="cpu").simulate(p).numpy()
    fine_setup = setup(
        numerics=Numerics(piece_width_keV=10.0, piece_relative_width=0.02, max_nodes_per_layer=2000)
    )
    fine = RBSSimulator(fine_setup, layers, device="cpu").simulate(p).numpy()
    z = (coarse - fine) / np.sqrt(fine + 1.0)
    energy = np.arange(2200) + 0.5
    assert np.abs(z[energy > 125]).max() < 0.1


def test_merged_isotopes_match_separate_isotopes():
    """Tungsten's isotopes simulated as one channel (default) or one channel each: the
    difference stays below 0.1 % of the peak height (z < 0.3 with 4e4 counts per channel;
    JaBS's own default numerics differ from its accurate ones by ~1 %)."""
    base = setup(
        fluence_times_solid_angle_sr=3e12,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    exact = setup(
        fluence_times_solid_angle_sr=3e12,
        numerics=Numerics(isotope_merge_sigmas=0.0),
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )
    layers = [["W"], ["Si"]]
    merged_sim = RBSSimulator(base, layers, device="cpu")
    exact_sim = RBSSimulator(exact, layers, device="cpu")
    assert len(merged_sim.reactions) < len(exact_sim.reactions)
    for p in ([30.0, 5000.0], [3000.0, 5000.0]):
        a, b = merged_sim.simulate(p).numpy(), exact_sim.simulate(p).numpy()
        assert b.max() > 4e4
        assert np.abs(a - b)[150:].max() < 1e-3 * b.max()
        assert np.abs((a - b) / np.sqrt(b + 1.0))[150:].max() < 0.3


def test_quadratic_calibration_moves_edges_and_keeps_areas():
    linear = Detector(channels=2400, gain_keV_per_channel=1.0, resolution_fwhm_keV=8.0)
    quad = Detector(
        channels=2400,
        gain_keV_per_channel=0.8,
        offset_keV=20.0,
        quadratic_keV_per_channel2=1e-4,
        resolution_fwhm_keV=8.0,
    )
    areas = []
    for det in (linear, quad):
        sim = RBSSimulator(setup(detector=det), [["Au"]], device="cpu")
        areas.append(float(sim.simulate([10.0]).sum()))
        thick = sim.simulate([30000.0]).numpy()
        (k,) = kinematic_factors(HE4, AU197, math.radians(170.0))
        chi_edge = float(det.channel_coordinate(k * 2000.0))
        plateau = thick[int(chi_edge) - 30 : int(chi_edge) - 20].mean()
        i = np.nonzero(thick > 0.5 * plateau)[0][-1]
        chi_half = np.interp(0.5 * plateau, [thick[i + 1], thick[i]], [i + 1.5, i + 0.5])
        assert chi_half == pytest.approx(chi_edge, abs=0.15)
    assert areas[1] == pytest.approx(areas[0], rel=1e-4)
