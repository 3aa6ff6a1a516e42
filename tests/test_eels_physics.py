"""The EELS forward model against tables, analytic results and its own invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import constants, integrate

from specinv.physics.eels import CONDITIONS, EELSSimulator, SimulatorSettings
from specinv.physics.eels.edges import (
    ELEMENT_Z,
    dataset_edge_sets,
    element_symbols,
    shell_energies_eV,
)
from specinv.physics.eels.finestructure import lifetime_width_eV
from specinv.physics.eels.lowloss import low_loss_kernel, plural_scattering
from specinv.physics.eels.scattering import (
    angular_factor,
    characteristic_angle,
    disc_lorentzian,
)


@pytest.fixture(scope="module")
def sim():
    return EELSSimulator(SimulatorSettings(chemical_shift_eV=0))


def spectrum_params(sim, composition, **conditions):
    """Parameters [1, D]: amounts by symbol, conditions over quiet defaults (no shifts,
    almost no fine structure, thin sample)."""
    p = np.zeros(sim.n_elements + len(CONDITIONS))
    for symbol, amount in composition.items():
        p[sim.symbols.index(symbol)] = amount
    base = {
        "beam_energy_kV": 200,
        "convergence_mrad": 5,
        "collection_mrad": 20,
        "start_eV": 80,
        "end_eV": 3071,
        "zlp_fwhm_eV": 1.0,
        "plasmon_eV": 15,
        "plasmon_fwhm_eV": 5,
        "n_plasmons": 2,
        "thickness_over_mfp": 0.1,
        "jump_ratio": 1.0,
        "background_exponent": 3.0,
        "log10_background": 5,
        "fine_structure_window_eV": 50,
        "fine_structure_degree": 10,
        "fine_structure_scale": 1e-6,
        "atomic_diameter_pm": 150,
        "instrumental_shift_eV": 0,
        "seed": 7,
    }
    base.update(conditions)
    for name, value in base.items():
        p[sim.column[name]] = value
    return p[None, :]


def test_the_edge_sets_cover_every_element_be_to_bi():
    sets = dataset_edge_sets()
    assert element_symbols()[0] == "Be" and element_symbols()[-1] == "Bi"
    assert len(element_symbols()) == len(ELEMENT_Z) == 80
    assert {s.symbol for s in sets} == set(element_symbols())
    assert all(85 <= s.onset_eV <= 3046 for s in sets)


@pytest.mark.parametrize(
    "symbol, shell, eels_onset_eV",
    # EELS onsets users know (Ahn & Krivanek's EELS atlas values, to a few eV)
    [("C", "K", 284), ("O", "K", 532), ("Ti", "L3", 456), ("Fe", "L3", 708), ("Si", "L3", 99)],
)
def test_onsets_are_the_tabulated_edges(sim, symbol, shell, eels_onset_eV):
    import xraydb

    onset = shell_energies_eV(symbol)[shell]
    assert abs(onset - eels_onset_eV) <= 3.0
    assert abs(onset - xraydb.xray_edges(symbol)[shell].energy) <= 12.0
    # the simulated spectrum rises steepest at the onset (within the channel and the
    # broadening of a 1 eV zero-loss peak)
    counts = sim.simulate(spectrum_params(sim, {symbol: 1})).numpy()[0]
    energy = sim.energy
    window = (energy > onset - 15) & (energy < onset + 15)
    rise = np.gradient(counts)[window]
    assert abs(energy[window][np.argmax(rise)] - onset) <= 2.0


def test_an_edge_grows_linearly_with_the_amount(sim):
    """With a strong C K edge fixing the scale, the O K contribution of amounts 0, a, 2a."""
    spectra = [
        sim.simulate(spectrum_params(sim, {"C": 20, "O": a, "Ti": 0})).numpy()[0]
        for a in (0.0, 0.5, 1.0)
    ]
    one, two = spectra[1] - spectra[0], spectra[2] - spectra[0]
    assert one[540:600].min() > 0  # O K is there
    np.testing.assert_allclose(two, 2.0 * one, rtol=1e-9, atol=1e-9 * spectra[0].max())


def test_the_jump_ratio_is_the_most_visible_edges(sim):
    """The largest ratio of edge signal to background 5-100 eV above the onsets is the
    jump_ratio (thin sample, no fine structure); a delayed edge (Sr M4,5, rising tens of eV
    after its onset) is scaled by where it shows, not by its onset."""
    for symbol, label, start in (("O", "O K", 80), ("Sr", "Sr M", 100)):
        p = spectrum_params(
            sim,
            {symbol: 1},
            jump_ratio=0.8,
            thickness_over_mfp=1e-4,
            start_eV=start,
            end_eV=1000,  # one edge set in range (not Sr L)
        )
        counts = sim.simulate(p).numpy()[0]
        onset = int(sim.set_onset[[s.label for s in sim.sets].index(label)])
        background = 1e5 * (np.maximum(sim.energy, 1.0) / start) ** -3.0
        ratio = (counts - background)[onset + 5 : onset + 100] / background[onset + 5 : onset + 100]
        assert ratio.max() == pytest.approx(0.8, rel=0.03), symbol


def test_every_element_gives_finite_non_negative_counts_and_its_label(sim):
    rng = np.random.default_rng(3)
    params = np.concatenate(
        [
            spectrum_params(
                sim,
                {symbol: 1},
                fine_structure_scale=10.0 ** rng.uniform(-1, 1),
                thickness_over_mfp=rng.uniform(0.1, 1.0),
                instrumental_shift_eV=rng.integers(-5, 6),
                seed=int(rng.integers(1 << 30)),
            )
            for symbol in sim.symbols
        ]
    )
    counts = sim.simulate(params).numpy()
    assert np.isfinite(counts).all() and counts.min() >= 0.0
    assert np.array_equal(sim.labels(params), np.eye(80, dtype=np.int8))
    inside = (sim.energy >= 80) & (sim.energy <= 3071)
    assert (counts[:, inside] > 0).all() and (counts[:, ~inside] == 0).all()


def test_a_spectrum_is_the_same_in_any_batch():
    sim = EELSSimulator()
    p = np.concatenate(
        [
            spectrum_params(sim, {"Ti": 1, "O": 2}, seed=11, fine_structure_scale=2.0),
            spectrum_params(sim, {"Sr": 1, "Ti": 1, "O": 3}, seed=12, start_eV=100),
        ]
    )
    both = sim.simulate(p).numpy()
    for i in range(2):
        np.testing.assert_allclose(sim.simulate(p[i : i + 1]).numpy()[0], both[i], rtol=1e-12)


def test_the_disc_integral_of_the_lorentzian_matches_quadrature():
    theta_e, beta = 0.7e-3, 2.0e-3
    for offset in (0.0, 1.0e-3, 3.5e-3):

        def integrand(r, phi, offset=offset):
            x, y = r * math.cos(phi) + offset, r * math.sin(phi)
            return r / (x * x + y * y + theta_e**2)

        numeric, _ = integrate.dblquad(integrand, 0.0, 2 * math.pi, 0.0, beta, epsabs=1e-10)
        closed = disc_lorentzian(
            torch.tensor(theta_e), torch.tensor(beta), torch.tensor(offset)
        ).item()
        assert closed == pytest.approx(numeric / math.pi, rel=1e-6)


def test_the_angular_factor_limits():
    loss, beam = torch.tensor([100.0, 500.0, 2000.0]), torch.tensor(200e3)
    theta_e = characteristic_angle(loss, beam)
    beta = torch.tensor(5e-3)
    parallel = angular_factor(loss, beam, torch.tensor(1e-9), beta)
    torch.testing.assert_close(parallel, torch.log1p(beta**2 / theta_e**2), rtol=1e-6, atol=0)
    # convergence spreads the distribution: a small aperture collects less of it
    wide = angular_factor(loss, beam, torch.tensor(10e-3), beta)
    assert (wide < parallel).all()
    # θ_E = E / (γ m0 v²) of 200 keV electrons and a 284 eV loss, from CODATA constants
    rest_eV = constants.m_e * constants.c**2 / constants.e
    gamma = 1 + 200e3 / rest_eV
    expected = 284.0 / (gamma * rest_eV * (1 - 1 / gamma**2))
    assert characteristic_angle(torch.tensor(284.0), beam).item() == pytest.approx(
        expected, rel=1e-7
    )


def test_the_low_loss_kernel_follows_poisson_statistics():
    tl = torch.tensor([0.3])
    kernel = low_loss_kernel(
        8192,
        1.0,
        torch.tensor([1.5]),
        torch.tensor([15.0]),
        torch.tensor([4.0]),
        torch.tensor([6.0]),
        tl,
    )[0]
    assert kernel.sum().item() == pytest.approx(1.0, rel=1e-12)
    thin = low_loss_kernel(
        8192,
        1.0,
        torch.tensor([1.5]),
        torch.tensor([15.0]),
        torch.tensor([4.0]),
        torch.tensor([6.0]),
        torch.tensor([1e-9]),
    )[0]
    # the log-ratio thickness: ln(I_total / I_0) = t/λ (I_0 from the zero-loss peak's
    # height against that of a sample without plasmons; their tails add 0.5 %)
    assert math.log(thin[0].item() / kernel[0].item()) == pytest.approx(0.3, rel=0.01)
    # the first plasmon peaks at E_p
    assert int(torch.argmax(kernel[8:40])) + 8 == 15


def test_plural_scattering_conserves_counts():
    single = torch.zeros(1, 1024, dtype=torch.float64)
    single[0, 300:400] = 1.0
    out = plural_scattering(
        single,
        1.0,
        torch.tensor([2.0]),
        torch.tensor([10.0]),
        torch.tensor([5.0]),
        torch.tensor([3.0]),
        torch.tensor([0.8]),
    )
    assert out.sum().item() == pytest.approx(100.0, rel=1e-3)
    assert out[0, :290].abs().max().item() < 1e-3  # nothing moves to lower losses


def test_lifetime_width_from_first_principles():
    eps, a_nm = 50.0, 0.25
    mfp_m = (538.0 * a_nm / eps**2 + 0.41 * a_nm**1.5 * eps**0.5) * 1e-9
    speed = math.sqrt(2 * eps * constants.e / constants.m_e)
    expected = constants.hbar * speed / mfp_m / constants.e
    assert lifetime_width_eV(np.array([eps]), a_nm)[0] == pytest.approx(expected, rel=1e-5)
