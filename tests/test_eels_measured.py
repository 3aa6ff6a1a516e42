"""Measured EELS spectra: the two-column reader, the channels the networks see, and a
quantification of a spectrum recorded at another dispersion."""

from __future__ import annotations

import numpy as np
import pytest

from specinv.config import ConfigError
from specinv.physics.eels import CONDITIONS, EELSSimulator, SimulatorSettings
from specinv.techniques.eels.measured import on_channels, read_spectrum
from specinv.techniques.eels.quantify import quantify


def write(path, energy, counts, header="# energy_eV counts\n"):
    path.write_text(
        header + "".join(f"{e:.4f}\t{c:.6g}\n" for e, c in zip(energy, counts, strict=True))
    )
    return path


def test_a_finer_dispersion_comes_back_as_counts_per_ev(tmp_path):
    energy = np.arange(400.0, 700.0, 0.25)  # 0.25 eV per channel
    per_ev = 1e4 * (energy / 400.0) ** -3
    spectrum = read_spectrum(write(tmp_path / "s.txt", energy, per_ev * 0.25))
    channels = on_channels(spectrum)
    assert channels.shape == (3072,)
    assert (channels[:400] == 0).all() and (channels[700:] == 0).all()
    inside = np.arange(400, 700)
    np.testing.assert_allclose(channels[inside], 1e4 * (inside / 400.0) ** -3, rtol=1e-4)


def test_dark_subtracted_negative_counts_are_read_and_clipped(tmp_path):
    energy = np.arange(300.0, 400.0)
    counts = np.where(energy < 310, -3.0, 100.0)
    channels = on_channels(read_spectrum(write(tmp_path / "s.txt", energy, counts)))
    assert channels.min() == 0.0 and channels[350] == pytest.approx(100.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("300 1\n299 2\n" + "".join(f"{400 + i} 1\n" for i in range(30)), "line 2: energy 299 eV"),
        ("# a\n300 1\n301 x\n", r"line 3: expected two numbers \(energy loss in eV, counts\)"),
        ("".join(f"{300 + i} 1\n" for i in range(5)), "5 data points; expected at least 20"),
        ("".join(f"{300 + 0.5 * i} 1\n" for i in range(40)), "cover 20 whole-eV channels"),
    ],
)
def test_bad_spectra_are_named(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        on_channels(read_spectrum(path))


def test_a_spectrum_at_half_an_ev_per_channel_is_quantified():
    """A noise-free C/Fe spectrum without fine structure, exported at 0.5 eV per channel
    (counts per channel), read back onto the 1 eV channels and quantified."""
    sim = EELSSimulator(SimulatorSettings(chemical_shift_eV=0))
    p = np.zeros(sim.n_elements + len(CONDITIONS))
    p[sim.symbols.index("C")], p[sim.symbols.index("Fe")] = 1.0, 2.0
    conditions = {
        "beam_energy_kV": 200, "convergence_mrad": 10, "collection_mrad": 20,
        "start_eV": 200, "end_eV": 1500, "zlp_fwhm_eV": 1.5, "plasmon_eV": 15,
        "plasmon_fwhm_eV": 5, "n_plasmons": 2, "thickness_over_mfp": 1e-3, "jump_ratio": 1.0,
        "background_exponent": 3.0, "log10_background": 6, "fine_structure_window_eV": 50,
        "fine_structure_degree": 10, "fine_structure_scale": 1e-9, "atomic_diameter_pm": 200,
        "instrumental_shift_eV": 0, "seed": 1,
    }  # fmt: skip
    for name, value in conditions.items():
        p[sim.column[name]] = value
    counts = sim.simulate(p[None])[0].numpy()
    fine = np.arange(200.0, 1500.0, 0.5)
    exported = np.interp(fine, np.arange(counts.size), counts) * 0.5
    from specinv.techniques.eels.measured import MeasuredSpectrum

    channels = on_channels(MeasuredSpectrum(fine, exported, "fine.txt"))
    q = quantify(channels, ["C", "Fe"], beam_energy_kV=200, convergence_mrad=10, collection_mrad=20)
    np.testing.assert_allclose(q.concentrations, [1 / 3, 2 / 3], rtol=0.05)
