"""Readers of measured RBS spectra: the real files in shared/real (pyIBA IDF, SIMNRA xnra,
JaBS two columns), text variants, the ``specinv rbs simulate`` CSV, bad input, and the
experiment built from a file and overrides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import real_dir
from specinv.cli import main
from specinv.physics.rbs import RBSSimulator, experiment_from_dict
from specinv.techniques.rbs.measured import (
    Calibration,
    MeasuredFileError,
    MeasuredSpectrum,
    compound_atoms,
    derived_exit_angle_deg,
    experiment_mapping,
    layer_areal_densities,
    read_spectrum,
    restored_counts,
)

# each pyIBA position-scan file: (total of its normalised values, maximum 1 in all ten;
# its largest channel's counts, by which the values were divided)
PYIBA_TOTALS = {
    1: (237.837992, 1475),
    2: (234.724645, 1427),
    3: (235.375956, 1282),
    4: (235.742485, 1029),
    5: (235.488399, 952),
    6: (232.713761, 1041),
    7: (237.064180, 981),
    8: (227.502910, 845),
    9: (235.264341, 783),
    10: (236.089529, 894),
}


def idf(body: str, data: str | None = None) -> str:
    """A small IDF document: one spectrum with ``body`` (beam, geometry, ...) and ``data``
    (default: 4 channels of counts)."""
    if data is None:
        data = "<simpledata><x>0 1 2 3</x><y>1 5 3 0</y></simpledata>"
    return (
        '<?xml version="1.0"?>\n<idf xmlns="http://idf.schemas.itn.pt"><sample><spectra>'
        f"<spectrum>{body}<data>{data}</data></spectrum></spectra></sample></idf>\n"
    )


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------
# the real files


@pytest.mark.parametrize("number", range(1, 11))
def test_pyiba_position_scan_files(number):
    path = real_dir() / "pyiba_position_scan" / f"RBS1_2IN_P_{number}_n.xml"
    s = read_spectrum(path)
    assert s.file_format == "IDF" and not s.simulated
    assert s.ion == "4He"
    assert s.beam_energy_keV == 1600.0 and s.beam_spread_fwhm_keV == 20.0
    assert s.geometry == "IBM"
    assert (s.incidence_deg, s.scattering_deg, s.exit_deg) == (30.0, 140.0, None)
    assert s.calibration == Calibration(150.0, 2.5, 0.0)
    assert s.resolution_fwhm_keV is None
    assert s.solid_angle_msr == 11.0
    assert s.n_channels == 1024 and s.first_channel == 0 and s.energy_axis_keV is None
    # the values (maximum 1) are multiples of 1/N: the counts are restored, N at most
    total, largest = PYIBA_TOTALS[number]
    assert s.counts.max() == largest and np.array_equal(s.counts, np.round(s.counts))
    assert s.counts.sum() == pytest.approx(total * largest, abs=0.5)
    assert not s.relative
    assert any(f"multiples of 1/{largest}" in n for n in s.notes)
    # a charge without the ion's charge state: no number of particles
    assert s.charge_uC == 10.0 and s.charge_state is None and s.fluence is None
    assert any("charge state" in n for n in s.notes)
    # the exit angle is not stated: both tilts, and the notes say so
    assert s.exit_angle_deg() == pytest.approx(10.0)
    assert s.exit_angle_deg("away") == pytest.approx(70.0)
    assert any("exit angle not stated" in n and "70" in n for n in s.notes)
    note = s.exit_angle_note("away")
    assert "away from the detector" in note and "tilt='towards'" in note and "exit" in note
    # the template sample block: CoPt / SiO2 / Si, given as percent of "Co 1 Pt 1" etc.
    assert s.layer_areal_densities[0] == pytest.approx({"Co": 195.0, "Pt": 195.0})
    assert s.layer_areal_densities[1] == pytest.approx({"Si": 550 / 3, "O": 1100 / 3})
    assert s.layer_areal_densities[2] == pytest.approx({"Si": 4e6})
    assert all(layer.roughness_fwhm_tfu is None for layer in s.layers)


def test_pyiba_file_lacks_resolution_and_fluence_for_an_experiment():
    s = read_spectrum(real_dir() / "pyiba_position_scan" / "RBS1_2IN_P_1_n.xml")
    with pytest.raises(MeasuredFileError) as info:
        experiment_mapping(s)
    message = str(info.value)
    assert message.startswith(str(s.path))
    assert "detector.resolution_fwhm_keV" in message and "fluence" in message
    assert "10 uC but no charge state" in message
    mapping = experiment_mapping(
        s, overrides={"fluence": 1, "detector": {"resolution_fwhm_keV": 18}}, tilt="away"
    )
    exp = experiment_from_dict(mapping)
    assert exp.setup.exit_angle_deg == pytest.approx(70.0)
    assert exp.setup.detector.channels == 1024
    assert exp.setup.fluence_times_solid_angle_sr == pytest.approx(11e-3)
    assert exp.setup.energy_cutoff_keV == pytest.approx(160.0)  # 10 % of 1600 keV > 150 keV
    towards = experiment_from_dict(
        experiment_mapping(s, overrides={"fluence": 1, "detector": {"resolution_fwhm_keV": 18}})
    )
    assert towards.setup.exit_angle_deg == pytest.approx(10.0)


def test_simnra_xnra_file():
    s = read_spectrum(real_dir() / "simnra_xnra" / "rbs_rough.xnra")
    assert s.file_format == "SIMNRA xnra"
    assert s.ion == "4He" and s.beam_energy_keV == 1500.0 and s.beam_spread_fwhm_keV == 0.0
    assert s.geometry == "IBM"
    assert (s.incidence_deg, s.scattering_deg, s.exit_deg) == (25.0, 120.0, 35.0)
    assert s.exit_angle_deg("away") == 35.0 and s.exit_angle_note() is None
    assert s.solid_angle_msr == pytest.approx(7.854, rel=1e-4)
    assert s.fluence == pytest.approx(1.273e14, rel=1e-3)
    assert s.charge_uC is None
    assert s.resolution_fwhm_keV == 15.0
    # a 10 mm circular detector at 100 mm: R = atan(0.05), in-plane σ = R/2, times 2.3548
    assert s.angular_spread_fwhm_deg == pytest.approx(3.3702, rel=1e-4)
    assert s.calibration == Calibration(0.0, 1.0, 0.0)
    top, substrate = s.layers
    assert dict(top.areal_densities) == pytest.approx({"O": 600.0, "Al": 400.0})
    assert top.roughness_fwhm_tfu == pytest.approx(100.0)
    assert top.roughness_distribution == "Gamma"
    assert dict(substrate.areal_densities) == pytest.approx({"C": 10000.0})
    assert substrate.roughness_fwhm_tfu is None and substrate.roughness_distribution is None
    # no measured data: SIMNRA's simulated spectrum instead
    assert s.simulated and not s.relative
    assert any("SIMNRA simulated" in n for n in s.notes)
    assert s.n_channels == 1005 and s.first_channel == 0
    assert s.counts.sum() == pytest.approx(2023243.08, rel=1e-8)
    assert s.counts.max() == pytest.approx(6917.5548, rel=1e-7)


def test_simnra_experiment_reproduces_simnras_spectrum():
    """Everything the simulator needs is in the file; simulated with it, the spectrum
    matches SIMNRA's above the low-energy tail (roughness, which the simulator lacks,
    only moves counts across the layer's edges)."""
    s = read_spectrum(real_dir() / "simnra_xnra" / "rbs_rough.xnra")
    exp = experiment_from_dict(experiment_mapping(s))
    assert exp.setup.exit_angle_deg == 35.0
    assert exp.setup.energy_cutoff_keV == 150.0
    ours = RBSSimulator.from_experiment(exp).simulate(exp.areal_densities).cpu().numpy().ravel()
    assert ours.shape == s.counts.shape
    assert ours[300:].sum() == pytest.approx(s.counts[300:].sum(), rel=0.01)
    assert ours[300:500].sum() == pytest.approx(s.counts[300:500].sum(), rel=0.01)  # C


def test_jabs_experimental_two_columns():
    s = read_spectrum(real_dir() / "jabs_example" / "experimental.dat")
    assert s.file_format == "two columns"
    assert s.n_channels == 8192 and s.first_channel == 0 and s.energy_axis_keV is None
    assert np.array_equal(s.counts, np.round(s.counts)) and not s.relative
    assert s.counts.sum() == 342008
    assert s.counts[0] == 1091 and s.counts.max() == 2549
    assert s.ion is None and s.calibration is None and s.layers == ()
    overrides = {
        "beam": {"ion": "4He", "energy_keV": 2027},
        "geometry": {"type": "IBM", "incidence_deg": 0, "scattering_deg": 160},
        "detector": {
            "calibration": {"offset_keV": 10, "gain_keV_per_channel": 1.72},
            "resolution_fwhm_keV": 10,
            "solid_angle_msr": 5,
        },
        "fluence": 2e13,
        "sample": {"layers": [{"Au": 30}, {"Si": 2166.7, "O": 4333.3}, {"Si": 20000}]},
    }
    exp = experiment_from_dict(experiment_mapping(s, overrides=overrides))
    assert exp.setup.detector.channels == 8192
    assert exp.setup.exit_angle_deg == pytest.approx(20.0)
    assert exp.setup.energy_cutoff_keV == pytest.approx(202.7)


# ---------------------------------------------------------------------------------------
# text variants and the specinv CSV


@pytest.mark.parametrize("separator", [" ", "\t", ",", ";", ", "])
def test_two_columns_of_channels_with_comments_and_header(tmp_path, separator):
    lines = ["# exported spectrum", "channel counts"]
    lines += [f"{ch}{separator}{c}" for ch, c in zip(range(100, 110), range(10), strict=True)]
    s = read_spectrum(write(tmp_path, "s.txt", "\n".join(lines) + "\n"))
    assert s.file_format == "two columns"
    assert s.first_channel == 100 and s.n_channels == 10
    assert np.array_equal(s.channels, np.arange(100, 110))
    assert np.array_equal(s.counts, np.arange(10.0))
    assert not s.relative and not s.simulated
    mapping = experiment_mapping(
        s,
        overrides={
            "beam": {"ion": "4He", "energy_keV": 2000},
            "geometry": {"incidence_deg": 0, "scattering_deg": 165},
            "detector": {
                "calibration": {"offset_keV": 0, "gain_keV_per_channel": 10},
                "resolution_fwhm_keV": 20,
                "solid_angle_msr": 5,
            },
            "fluence": 1e13,
            "sample": {"layers": [{"Au": 100}]},
        },
    )
    assert mapping["detector"]["channels"] == 110  # channels 0 … 109 simulated
    assert mapping["energy_cutoff_keV"] == 1000.0  # channel 100 at 1000 keV
    experiment_from_dict(mapping)


def test_one_column_counts_from_channel_zero(tmp_path):
    s = read_spectrum(write(tmp_path, "counts.dat", "\n".join(map(str, [3, 0, 7, 2])) + "\n"))
    assert s.file_format == "one column"
    assert s.first_channel == 0 and np.array_equal(s.counts, [3.0, 0.0, 7.0, 2.0])
    assert any("one column" in n for n in s.notes)


def test_two_columns_of_energies_give_a_calibration(tmp_path):
    energy = 120.0 + 2.5 * np.arange(50)
    text = "".join(f"{e:.3f} {c / 7:.6f}\n" for e, c in zip(energy, range(50), strict=True))
    s = read_spectrum(write(tmp_path, "e.txt", text))
    assert np.allclose(s.energy_axis_keV, energy) and s.first_channel == 0
    assert s.calibration.offset_keV == pytest.approx(120.0)
    assert s.calibration.gain_keV_per_channel == pytest.approx(2.5)
    # counts divided by 7 and printed with 6 decimals: restored
    assert not s.relative and np.array_equal(s.counts, np.arange(50))
    assert any("multiples of 1/7" in n for n in s.notes)
    assert any("read as energies" in n for n in s.notes)
    assert any("lower edge" in n for n in s.notes)


def test_only_spectra_divided_by_a_constant_are_restored_as_counts():
    counts = np.random.default_rng(0).poisson(200.0, 300).astype(float)
    counts[:5] = [0, 1, 2, 1, 0]
    restored, factor = restored_counts(np.round(counts / counts.max(), 6))
    assert factor == counts.max() and np.array_equal(restored, counts)
    # a spectrum scaled channel by channel (an efficiency correction): relative
    efficiency = np.linspace(0.8, 1.2, counts.size)
    assert restored_counts(np.round(counts * efficiency / 250.0, 6)) is None
    # rounded to 3 decimals: no longer whole multiples of one step
    assert restored_counts(np.round(counts / counts.max(), 3)) is None
    # a step of 0.001 is more likely the precision the values were printed with
    assert restored_counts(counts / 1000.0) is None
    # too few channels with counts to tell
    assert restored_counts(np.array([0.5, 1.0, 0.0, 0.25])) is None


def test_integer_energies_named_in_the_header_are_energies(tmp_path):
    text = "energy_keV,counts\n" + "".join(f"{100 + i},{i}\n" for i in range(20))
    s = read_spectrum(write(tmp_path, "e.csv", text))
    assert s.energy_axis_keV is not None
    assert s.calibration.gain_keV_per_channel == pytest.approx(1.0)


@pytest.mark.parametrize("noise", [False, True])
def test_specinv_simulate_csv(tmp_path, noise):
    yaml_text = (
        "beam: {ion: 4He, energy_keV: 2000}\n"
        "geometry: {type: IBM, incidence_deg: 10, scattering_deg: 165}\n"
        "detector:\n"
        "  channels: 256\n"
        "  calibration: {offset_keV: 50, gain_keV_per_channel: 8, "
        "quadratic_keV_per_channel2: 0.001}\n"
        "  resolution_fwhm_keV: 20\n"
        "  solid_angle_msr: 5\n"
        "fluence: 1.0e13\n"
        "energy_cutoff_keV: 100\n"
        "sample: {layers: [{Au: 100}, {Si: 5000}]}\n"
    )
    experiment = write(tmp_path, "exp.yaml", yaml_text)
    out = tmp_path / "out.csv"
    args = ["rbs", "simulate", str(experiment), "-o", str(out)]
    assert main(args + (["--noise", "--seed", "5"] if noise else [])) == 0
    s = read_spectrum(out)
    written = np.loadtxt(out, delimiter=",", skiprows=1)
    assert s.file_format == "specinv CSV" and s.simulated and not s.relative
    assert s.n_channels == 256 and s.first_channel == 0
    assert np.array_equal(s.counts, written[:, 2])
    assert (np.array_equal(s.counts, np.round(s.counts))) == noise
    assert s.calibration.offset_keV == pytest.approx(50.0, abs=1e-5)
    assert s.calibration.gain_keV_per_channel == pytest.approx(8.0, rel=1e-7)
    assert s.calibration.quadratic_keV_per_channel2 == pytest.approx(0.001, rel=1e-5)
    overrides = {
        "beam": {"ion": "4He", "energy_keV": 2000},
        "geometry": {"type": "IBM", "incidence_deg": 10, "scattering_deg": 165},
        "detector": {"resolution_fwhm_keV": 20, "solid_angle_msr": 5},
        "fluence": 1e13,
        "energy_cutoff_keV": 100,
        "sample": {"layers": [{"Au": 100}, {"Si": 5000}]},
    }
    exp = experiment_from_dict(experiment_mapping(s, overrides=overrides))
    assert exp.setup.detector.channels == 256
    assert exp.setup.detector.quadratic_keV_per_channel2 == pytest.approx(0.001, rel=1e-5)
    if not noise:  # the experiment read back simulates the same spectrum
        again = RBSSimulator.from_experiment(exp).simulate(exp.areal_densities)
        np.testing.assert_allclose(again.cpu().numpy().ravel(), s.counts, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------
# IDF details


def test_idf_units_charge_state_energy_axis_and_formulas(tmp_path):
    body = (
        "<beam><beamparticle>alpha</beamparticle><beamenergy units='MeV'>2.0</beamenergy>"
        "<beamenergyspread units='keV' mode='sigma'>4.2466</beamenergyspread>"
        "<beamfluence units='uC'>8.0109</beamfluence><beamchargestate>1</beamchargestate>"
        "</beam><geometry><geometrytype>Cornell</geometrytype>"
        "<incidenceangle units='degree'>30</incidenceangle>"
        "<scatteringangle units='deg'>170</scatteringangle></geometry>"
        "<detection><detector><solidangle units='sr'>0.004</solidangle></detector></detection>"
        "<calibrations><detectorresolutions><detectorresolution><resolutionparameters>"
        "<resolutionparameter units='MeV' mode='FWHM'>0.012</resolutionparameter>"
        "</resolutionparameters></detectorresolution></detectorresolutions></calibrations>"
    )
    data = (
        "<simpledata><xaxis><axisname>energy</axisname><axisunit>keV</axisunit></xaxis>"
        "<x>100 102 104 106 108</x><y>5 6 7 8 9</y></simpledata>"
    )
    sample = (
        "<structure><layeredstructure><layers><layer>"
        "<layerthickness units='1e15at/cm2'>600</layerthickness><layerelements>"
        "<layerelement><name>SiO2</name><concentration units='fraction'>0.5</concentration>"
        "</layerelement><layerelement><name>Si</name><concentration>0.5</concentration>"
        "</layerelement><layerelement><name>Co50Pt50</name><concentration>0</concentration>"
        "</layerelement></layerelements></layer></layers></layeredstructure></structure>"
    )
    text = idf(body, data).replace("<sample>", f"<sample>{sample}")
    s = read_spectrum(write(tmp_path, "a.idf", text))
    assert s.ion == "4He" and s.beam_energy_keV == 2000.0
    assert s.beam_spread_fwhm_keV == pytest.approx(10.0, rel=1e-4)
    assert s.solid_angle_msr == 4.0 and s.resolution_fwhm_keV == pytest.approx(12.0)
    assert s.charge_uC == pytest.approx(8.0109) and s.charge_state == 1
    assert s.fluence == pytest.approx(5.0e13, rel=1e-4)
    assert s.geometry == "Cornell" and s.exit_deg is None
    expected = math.degrees(math.acos(-math.cos(math.radians(170)) * math.cos(math.radians(30))))
    assert s.exit_angle_deg() == pytest.approx(expected)
    assert s.exit_angle_deg("away") == pytest.approx(expected)
    assert np.array_equal(s.energy_axis_keV, [100, 102, 104, 106, 108])
    assert s.calibration == Calibration(pytest.approx(100.0), pytest.approx(2.0), 0.0)
    assert s.layer_areal_densities == (pytest.approx({"Si": 400.0, "O": 200.0}),)


def test_compounds_and_layers():
    assert compound_atoms("Si 1 O 2") == {"Si": 1.0, "O": 2.0}
    assert compound_atoms("Co 1 Pt 1") == {"Co": 1.0, "Pt": 1.0}
    assert compound_atoms("Co50Pt50") == {"Co": 50.0, "Pt": 50.0}
    assert compound_atoms("SiO2") == {"Si": 1.0, "O": 2.0}
    assert compound_atoms("O") == {"O": 1.0}
    assert compound_atoms("13C") == {"13C": 1.0}
    assert layer_areal_densities(300, {"SiO2": 1}) == pytest.approx({"Si": 100, "O": 200})
    assert layer_areal_densities(1000, {"O": 60, "Al": 40, "Au": 0}) == pytest.approx(
        {"O": 600, "Al": 400}
    )
    with pytest.raises(ValueError, match="'Xy2O'"):
        layer_areal_densities(100, {"Xy2O": 1})
    with pytest.raises(ValueError, match="sum to 0"):
        layer_areal_densities(100, {"Si": 0})


def test_exit_angle_rules():
    assert derived_exit_angle_deg("IBM", 30, 140) == pytest.approx(10)
    assert derived_exit_angle_deg("IBM", 30, 140, "away") == pytest.approx(70)
    assert derived_exit_angle_deg("IBM", 0, 170, "away") == pytest.approx(10)
    assert derived_exit_angle_deg("Cornell", 0, 160) == pytest.approx(20)
    with pytest.raises(ValueError, match="tilt"):
        derived_exit_angle_deg("IBM", 0, 160, "sideways")


def test_an_away_tilt_the_detector_cannot_see_is_refused(tmp_path):
    body = (
        "<beam><beamparticle>4He</beamparticle><beamenergy units='keV'>2000</beamenergy></beam>"
        "<geometry><geometrytype>IBM</geometrytype><incidenceangle units='degree'>60"
        "</incidenceangle><scatteringangle units='degree'>120</scatteringangle></geometry>"
    )
    s = read_spectrum(write(tmp_path, "tilt.xml", idf(body)))
    assert s.exit_angle_deg() == pytest.approx(0.0)
    with pytest.raises(
        MeasuredFileError, match=r"tilt.xml: tilt 'away' gives an exit angle of 120"
    ):
        s.exit_angle_deg("away")


def test_measured_spectrum_is_validated_on_construction(tmp_path):
    s = MeasuredSpectrum(path=tmp_path / "x", counts=[1, 2, 3], first_channel=4)
    assert np.array_equal(s.channels, [4, 5, 6])
    with pytest.raises(ValueError):
        s.counts[0] = 5  # read-only
    with pytest.raises(MeasuredFileError, match=r"x: channel 5: count nan; expected a finite"):
        MeasuredSpectrum(path=tmp_path / "x", counts=[1, float("nan"), 3], first_channel=4)


# ---------------------------------------------------------------------------------------
# bad input: the error names the file and the problem


def expect_error(path, *fragments, **kwargs):
    with pytest.raises(MeasuredFileError) as info:
        read_spectrum(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_nan_counts_name_the_channel(tmp_path):
    path = write(tmp_path, "nan.txt", "0 1\n1 2\n2 nan\n3 4\n")
    expect_error(path, "channel 2 (line 3): count nan", "expected a finite number")


def test_infinite_counts_in_idf_name_the_channel(tmp_path):
    data = "<simpledata><x>7 8 9</x><y>1 inf 3</y></simpledata>"
    expect_error(write(tmp_path, "inf.xml", idf("", data)), "channel 8: count inf")


def test_negative_counts_name_the_channel(tmp_path):
    path = write(tmp_path, "neg.txt", "10 1\n11 -2\n12 4\n")
    expect_error(path, "channel 11 (line 2): count -2", "expected counts >= 0")


def test_truncated_xml_gives_line_and_column(tmp_path):
    text = idf("")[:-40]
    expect_error(write(tmp_path, "cut.xml", text), "not well-formed XML at line 2", "truncated")


def test_entity_bomb_is_refused_not_expanded(tmp_path):
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    text = (
        '<?xml version="1.0"?><!DOCTYPE idf [<!ENTITY lol0 "lol">'
        + lol
        + ']><idf xmlns="http://idf.schemas.itn.pt">&lol9;</idf>'
    )
    expect_error(write(tmp_path, "bomb.xml", text), "entity", "refused")


def test_external_entity_is_refused(tmp_path):
    secret = write(tmp_path, "secret.txt", "0 1\n1 2\n")
    text = (
        f'<?xml version="1.0"?><!DOCTYPE idf [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        '<idf xmlns="http://idf.schemas.itn.pt">&xxe;</idf>'
    )
    expect_error(write(tmp_path, "xxe.xml", text), "external entity", "refused")


def test_missing_calibration_is_named_by_experiment_mapping(tmp_path):
    body = (
        "<beam><beamparticle>4He</beamparticle><beamenergy units='keV'>2000</beamenergy>"
        "<beamfluence units='#particles'>1e13</beamfluence></beam>"
        "<geometry><incidenceangle units='degree'>0</incidenceangle>"
        "<scatteringangle units='degree'>165</scatteringangle>"
        "<exitangle units='degree'>15</exitangle></geometry>"
        "<detection><detector><solidangle units='msr'>5</solidangle></detector></detection>"
    )
    s = read_spectrum(write(tmp_path, "nocal.xml", idf(body)))
    assert s.calibration is None and s.fluence == 1e13
    overrides = {"detector": {"resolution_fwhm_keV": 15}, "sample": {"layers": [{"Si": 1e4}]}}
    with pytest.raises(MeasuredFileError) as info:
        experiment_mapping(s, overrides=overrides)
    assert str(info.value) == (
        f"{s.path}: no detector calibration in the file: give detector.calibration in --experiment"
    )
    overrides["detector"]["calibration"] = {"gain_keV_per_channel": 500}
    mapping = experiment_mapping(s, overrides=overrides)
    assert mapping["geometry"]["exit_deg"] == 15
    experiment_from_dict(mapping)


def test_experiment_mapping_reports_what_the_simulator_refuses(tmp_path):
    s = read_spectrum(write(tmp_path, "c.txt", "1\n2\n3\n"))
    overrides = {
        "beam": {"ion": "4He", "energy_keV": 2000},
        "geometry": {"incidence_deg": 0, "scattering_deg": 165},
        "detector": {
            "calibration": {"gain_keV_per_channel": 3},
            "resolution_fwhm_keV": -1,
            "solid_angle_msr": 5,
        },
        "fluence": 1e13,
        "sample": {"layers": [{"Si": 1e4}]},
    }
    with pytest.raises(MeasuredFileError, match=r"c.txt: detector.resolution_fwhm_keV: expected"):
        experiment_mapping(s, overrides=overrides)


@pytest.mark.parametrize("name", ["Xx", "4Xe2", "12He"])
def test_unknown_ion_is_refused(tmp_path, name):
    body = f"<beam><beamparticle>{name}</beamparticle></beam>"
    expect_error(write(tmp_path, "ion.xml", idf(body)), "<beamparticle>", repr(name), "4He")


def test_empty_file(tmp_path):
    expect_error(write(tmp_path, "empty.txt", ""), "empty file")
    expect_error(write(tmp_path, "blank.txt", "\n  \n"), "empty file")
    expect_error(write(tmp_path, "comments.txt", "# only\n# comments\n"), "no lines of numbers")


def test_binary_garbage(tmp_path):
    rng = np.random.default_rng(0)
    expect_error(write(tmp_path, "nul.bin", bytes(range(256)) * 4), "binary data", "NUL")
    noise = bytes(rng.integers(1, 256, 4096, dtype=np.uint8))
    expect_error(write(tmp_path, "noise.bin", noise), "binary data")


def test_mismatched_x_and_y(tmp_path):
    data = "<simpledata><x>0 1 2 3</x><y>1 2 3</y></simpledata>"
    expect_error(
        write(tmp_path, "a.xml", idf("", data)),
        "<data><simpledata><y> holds 3 values but <x> 4; expected one count per channel",
    )


def test_rows_of_different_lengths(tmp_path):
    path = write(tmp_path, "rows.txt", "0 1\n1 2\n2 3 4\n")
    expect_error(path, "line 3: 3 values but line 1 has 2")


def test_fewer_than_two_channels(tmp_path):
    expect_error(write(tmp_path, "one.txt", "0 5\n"), "1 channel(s)", "at least 2")


def test_all_zero_counts(tmp_path):
    expect_error(write(tmp_path, "zero.txt", "0 0\n1 0\n"), "all 2 counts are zero")


def test_decreasing_energies(tmp_path):
    path = write(tmp_path, "e.txt", "100.5 1\n102.5 2\n101.5 3\n")
    expect_error(path, "line 3: energy 101.5 keV after 102.5")


def test_text_after_numbers(tmp_path):
    expect_error(write(tmp_path, "t.txt", "0 1\n1 2\nend of data\n"), "line 3", "not numbers")


def test_oversized_file(tmp_path):
    path = write(tmp_path, "big.txt", "0 1\n" * 100)
    expect_error(path, "400 bytes; expected at most 100 bytes", max_bytes=100)


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nowhere.xml", "no such file")


def test_xml_that_is_not_idf(tmp_path):
    expect_error(write(tmp_path, "svg.xml", "<svg><g/></svg>"), "root element <svg>", "<idf>")


@pytest.mark.parametrize(
    "body, fragment",
    [
        (
            "<beam><beamenergy units='J'>1</beamenergy></beam>",
            "<beam><beamenergy> in units 'J'; expected energy in keV",
        ),
        (
            "<geometry><incidenceangle units='radian'>0.1</incidenceangle></geometry>",
            "<geometry><incidenceangle> in units 'radian'; expected angle in degree",
        ),
        (
            "<beam><beamenergy units='keV'>fast</beamenergy></beam>",
            "<beam><beamenergy> 'fast'; expected a number",
        ),
        (
            "<geometry><geometrytype>sideways</geometrytype></geometry>",
            "<geometry><geometrytype> 'sideways'; expected IBM, Cornell or general",
        ),
    ],
)
def test_bad_idf_values(tmp_path, body, fragment):
    expect_error(write(tmp_path, "v.xml", idf(body)), fragment)


def test_xnra_without_any_counts(tmp_path):
    data = "<simpledata><x>0 1</x><y>0 0</y></simpledata>"
    expect_error(
        write(tmp_path, "empty.xnra", idf("", data)),
        "no measured counts (<data><simpledata><y> all 2 zero) and no simulated spectrum",
    )


def test_unknown_layer_element(tmp_path):
    sample = (
        "<structure><layeredstructure><layers><layer>"
        "<layerthickness units='1e15at/cm2'>100</layerthickness><layerelements>"
        "<layerelement><name>Qq</name><concentration>1</concentration></layerelement>"
        "</layerelements></layer></layers></layeredstructure></structure>"
    )
    text = idf("").replace("<sample>", f"<sample>{sample}")
    expect_error(write(tmp_path, "layer.xml", text), "<layer> 1: 'Qq'")


def test_a_header_picks_the_counts_column(tmp_path):
    text = "E(keV);other;counts\n" + "".join(f"{100 + 2 * i};7;{i + 1}\n" for i in range(10))
    s = read_spectrum(write(tmp_path, "h.csv", text))
    assert np.array_equal(s.counts, np.arange(1.0, 11.0))
    assert s.energy_axis_keV[0] == 100 and s.calibration.gain_keV_per_channel == pytest.approx(2)
