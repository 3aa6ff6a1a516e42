"""Fits of one measured spectrum: the fit model's parameters, a round trip on a noisy
simulated spectrum (values within their uncertainties), and JaBS's measured example."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import real_dir
from specinv.physics.rbs import Detector, Setup, poisson_noise
from specinv.techniques.rbs.fit import fit_spectrum
from specinv.techniques.rbs.fitmodel import FitModelError, LayerModel, RBSFitModel

REPO = Path(__file__).resolve().parents[1]
SOLID_ANGLE_SR = 5e-3


def jabs_example_setup(channels: int = 1111) -> Setup:
    """The JaBS example's setup with its starting values (example.jbs, detector.jbs)."""
    return Setup(
        ion="4He",
        beam_energy_keV=2027.0,
        scattering_deg=160.0,
        detector=Detector(
            channels=channels, gain_keV_per_channel=1.72, offset_keV=10.0, resolution_fwhm_keV=10.0
        ),
        fluence_times_solid_angle_sr=2e13 * SOLID_ANGLE_SR,
        energy_cutoff_keV=150.0,
    )


def jabs_example_layers() -> list[LayerModel]:
    return [
        LayerModel(30.0, {"Au": 1.0}, roughness_tfu=20.0),
        LayerModel(6500.0, {"Si": 1.0, "O": 2.0}),
        LayerModel(20000.0, {"Si": 1.0}),
    ]


JABS_FREE = [
    "fluence",
    "layer1.thickness",
    "layer1.roughness",
    "layer2.thickness",
    "layer2.O",
    "resolution",
    "offset",
    "gain",
]


def test_free_fractions_share_the_layer_with_the_fixed_elements():
    layers = [LayerModel(1000.0, {"Si": 1.0, "O": 2.0, "N": 1.0}), LayerModel(1e4, {"Si": 1.0})]
    model = RBSFitModel(jabs_example_setup(), layers, ["layer1.O", "layer1.thickness"])
    theta = torch.tensor([[0.7, 2000.0]], dtype=torch.float64)
    amounts, _ = model.sample(theta)
    si, o, n = amounts[0, :3].tolist()
    assert o == pytest.approx(0.7 * 2000.0)
    # Si and N keep their 1:1 ratio and share the remaining 30 %
    assert si == pytest.approx(0.15 * 2000.0) and n == pytest.approx(0.15 * 2000.0)


@pytest.mark.parametrize(
    ("free", "message"),
    [
        (["layer4.thickness"], "free parameter 'layer4.thickness': expected one of"),
        (["layer1.Au"], "layer 1 holds only Au"),
        (["layer2.Fe"], "layer2.O"),
        (["fluence", "fluence"], "listed twice"),
    ],
)
def test_unknown_free_parameters_are_named(free, message):
    with pytest.raises(FitModelError, match=message):
        RBSFitModel(jabs_example_setup(), jabs_example_layers(), free)


def test_fit_recovers_a_noisy_simulated_spectrum_within_its_uncertainties():
    truth = dict(zip(JABS_FREE, [2.1e13, 33.0, 25.0, 6900.0, 0.65, 13.5, 19.0, 1.714], strict=True))
    model = RBSFitModel(
        jabs_example_setup(), jabs_example_layers(), JABS_FREE, solid_angle_sr=SOLID_ANGLE_SR
    )
    expected = model.simulate(np.array([[truth[n] for n in model.names]]))[0]
    counts = poisson_noise(expected, seed=7).numpy()
    roi = np.zeros(model.n_channels, dtype=bool)
    roi[200:701] = roi[1050:1111] = True
    fit = fit_spectrum(model, counts, roi)
    assert fit.converged
    assert fit.reduced_chi2 == pytest.approx(1.0, abs=0.15)
    pulls = (fit.values - np.array([truth[n] for n in fit.names])) / fit.std
    assert np.all(np.abs(pulls) < 3.5), dict(zip(fit.names, pulls.round(2), strict=True))
    assert np.allclose(np.diag(fit.correlation), 1.0)
    assert np.all(np.abs(fit.correlation) <= 1.0 + 1e-9)


def test_fitted_experiment_reproduces_the_fitted_spectrum():
    model = RBSFitModel(
        jabs_example_setup(), jabs_example_layers(), JABS_FREE, solid_angle_sr=SOLID_ANGLE_SR
    )
    values = np.array([2.1e13, 33.0, 25.0, 6900.0, 0.65, 13.5, 19.0, 1.714])
    spectrum = model.simulate(values[None])[0]
    fitted = model.experiment(values)
    same = RBSFitModel.from_experiment(fitted, [], roughness_points=model.roughness_points)
    torch.testing.assert_close(same.simulate(np.zeros((1, 0)))[0], spectrum, rtol=1e-9, atol=1e-6)
    # with its own (automatic) quadrature: the same within the convergence tolerance
    again = RBSFitModel.from_experiment(fitted, []).simulate(np.zeros((1, 0)))[0]
    assert float(((again - spectrum) ** 2 / (spectrum + 1)).sum()) < 0.02


def test_jabs_example_measured_spectrum():
    """Issue 18, acceptance 1: JaBS's example (experimental.dat, example.jbs) with its free
    parameters and fit ranges.  JaBS 0.7.6 reaches chisq/dof 1.339 over the 562 channels."""
    data = np.loadtxt(real_dir() / "jabs_example" / "experimental.dat")
    model = RBSFitModel(
        jabs_example_setup(), jabs_example_layers(), JABS_FREE, solid_angle_sr=SOLID_ANGLE_SR
    )
    roi = np.zeros(model.n_channels, dtype=bool)
    roi[200:450] = roi[450:701] = roi[1050:1111] = True  # JaBS: [200:449] [450:700] [1050:1110]
    fit = fit_spectrum(model, data[: model.n_channels, 1], roi)
    assert int(roi.sum()) == 562 and fit.converged
    assert fit.reduced_chi2 <= 1.4
    value = dict(zip(fit.names, fit.values, strict=True))
    std = dict(zip(fit.names, fit.std, strict=True))
    # JaBS's fitted values (jabs_fit/fit_log.txt) and their errors
    jabs = {
        "layer2.thickness": (6864.34, 13.0),
        "layer2.O": (0.666615, 0.00577),
        "resolution": (13.6085, 0.154),
        "offset": (19.4835, 0.866),
        "gain": (1.71396, 0.000814),
    }
    for name, (v, s) in jabs.items():
        assert abs(value[name] - v) < 2 * np.hypot(s, std[name]), name
    # JaBS's 20 grid cells of this Gamma distribution carry a total weight of 1.019 (its
    # cells' probabilities are rescaled to conserve the mean thickness), so its spectra are
    # 1.9 % higher than the distribution's average and its fluence 1.9 % lower
    assert value["fluence"] / 2.06834e13 == pytest.approx(1.0191, abs=0.006)


def test_fit_command_on_simnras_file_and_its_fitted_experiment(tmp_path):
    """``specinv rbs fit`` from an .xnra alone (setup, sample and roughness from the file):
    SIMNRA's spectrum with the file's roughness; the fitted experiment.yaml simulated
    again by ``specinv rbs simulate`` gives the fitted spectrum."""
    import json

    import pandas as pd

    from specinv.cli import main

    out = tmp_path / "fit"
    xnra = real_dir() / "simnra_xnra" / "rbs_rough.xnra"
    assert (
        main(["rbs", "fit", str(xnra), "--fit", "fluence", "--roi", "200:1004", "-o", str(out)])
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    # SIMNRA's spectrum is noise-free: below 1 where the models agree (without the
    # detector aperture's spread of scattering angles 9.8, without it and the roughness 11.0)
    assert result["reduced_chi2"] < 0.5
    assert any("detector aperture: circular 10 mm at 100 mm" in n for n in result["notes"])
    assert result["parameters"]["fluence"]["value"] == pytest.approx(1.2732e14, rel=0.02)
    spectrum = pd.read_csv(out / "spectrum.csv")
    assert (
        main(["rbs", "simulate", str(out / "experiment.yaml"), "-o", str(tmp_path / "s.csv")]) == 0
    )
    again = pd.read_csv(tmp_path / "s.csv")
    roi = spectrum.in_roi.values.astype(bool)
    chi2 = ((again.counts.values - spectrum.fitted.values) ** 2 / (spectrum.fitted.values + 1))[roi]
    assert chi2.sum() < 0.05
    assert (out / "fit.png").stat().st_size > 20_000


@pytest.mark.parametrize("number", [1, 10])
def test_a_position_scan_file_fitted_with_a_free_scale(tmp_path, number):
    """A pyIBA position-scan file (values divided by the largest channel: restored as
    counts) with its real setup (examples/rbs_pyiba_2IN_protons.yaml), the channels above
    the Si edge: the scale, the W fraction beside the Fe stand-in and a flat background
    are fitted to the noise level, the W surface peak where the kinematics put it."""
    import json

    import pandas as pd

    from specinv.cli import main

    out = tmp_path / "fit"
    path = real_dir() / "pyiba_position_scan" / f"RBS1_2IN_P_{number}_n.xml"
    experiment = REPO / "examples" / "rbs_pyiba_2IN_protons.yaml"
    args = ["rbs", "fit", str(path), "--experiment", str(experiment), "--roi", "472:600"]
    assert main([*args, "--fit", "fluence,layer1.W,background", "-o", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert 0.3 < result["reduced_chi2"] < 1.3 and not result["relative_counts"]
    assert any("multiples of 1/" in n for n in result["notes"])
    fitted = pd.read_csv(out / "spectrum.csv").set_index("channel")["fitted"]
    peak = int(fitted.loc[500:540].idxmax())
    assert 515 <= peak <= 521  # W: K(1H, W, 150°) x 2300 keV at channel 520
    assert result["parameters"]["background"]["value"] > 0


def test_fit_command_refuses_bad_options_before_fitting(tmp_path, capsys):
    from specinv.cli import main

    spectrum = tmp_path / "s.txt"
    spectrum.write_text("\n".join(f"{i} {max(0, 100 - i)}" for i in range(200)))
    experiment = tmp_path / "e.yaml"
    experiment.write_text(
        "beam: {ion: 4He, energy_keV: 2000}\ngeometry: {incidence_deg: 0, scattering_deg: 165}\n"
        "detector: {channels: 200, calibration: {gain_keV_per_channel: 10}, "
        "resolution_fwhm_keV: 15, solid_angle_msr: 5}\nfluence: 1.0e+13\n"
        "energy_cutoff_keV: 200\nsample: {layers: [{Si: 1000}]}\n"
    )
    base = ["rbs", "fit", str(spectrum), "--experiment", str(experiment), "-o", str(tmp_path / "o")]
    assert main([*base, "--roi", "150:100"]) == 2
    assert "--roi '150:100': expected LOW:HIGH" in capsys.readouterr().err
    assert main([*base, "--fit", "layer2.thickness"]) == 2
    assert "free parameter 'layer2.thickness'" in capsys.readouterr().err
    assert main([*base[:3], "-o", str(tmp_path / "o")]) == 2
    assert "no detector calibration" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_relative_counts_fit_the_shape_with_a_free_scale():
    """A normalised spectrum (maximum 1, as the pyIBA files): equal weights, the fluence a
    free scale; the thicknesses come back, with uncertainties from the residual variance."""
    model = RBSFitModel(
        jabs_example_setup(),
        [
            LayerModel(60.0, {"Au": 1.0}),
            LayerModel(4000.0, {"Si": 1.0, "O": 2.0}),
            LayerModel(20000.0, {"Si": 1.0}),
        ],
        ["fluence", "layer1.thickness", "layer2.thickness"],
        solid_angle_sr=SOLID_ANGLE_SR,
    )
    truth = np.array([2e13, 75.0, 5000.0])
    expected = model.simulate(truth[None])[0].numpy()
    counts = poisson_noise(torch.as_tensor(expected), seed=3).numpy()
    normalised = counts / counts.max()
    roi = np.zeros(model.n_channels, dtype=bool)
    roi[150:1100] = True
    # the fluence's start: the scale of a normalised spectrum (the command scales it too)
    scale = normalised[roi] @ expected[roi] / (expected[roi] @ expected[roi])
    setup = jabs_example_setup()
    start = RBSFitModel(
        replace(setup, fluence_times_solid_angle_sr=setup.fluence_times_solid_angle_sr * scale),
        model.layers,
        model.free,
        solid_angle_sr=SOLID_ANGLE_SR,
    )
    fit = fit_spectrum(start, normalised, roi, relative=True)
    assert fit.relative and fit.converged
    values = dict(zip(fit.names, fit.values, strict=True))
    std = dict(zip(fit.names, fit.std, strict=True))
    for name, true in (("layer1.thickness", 75.0), ("layer2.thickness", 5000.0)):
        assert abs(values[name] - true) < 4 * std[name], (name, values[name], std[name])
        assert std[name] < 0.05 * true


def test_pileup_and_background_are_fitted_and_written_back(tmp_path):
    from specinv.physics.rbs import experiment_from_dict, experiment_to_dict

    free = ["fluence", "layer1.thickness", "pileup", "background", "background_low"]
    layers = [LayerModel(30.0, {"Au": 1.0}), LayerModel(20000.0, {"Si": 1.0})]
    model = RBSFitModel(jabs_example_setup(), layers, free, solid_angle_sr=SOLID_ANGLE_SR)
    truth = np.array([2e14, 40.0, 0.004, 2.0, 60.0])
    expected = model.simulate(truth[None])[0]
    counts = poisson_noise(expected, seed=11).numpy()
    roi = np.zeros(model.n_channels, dtype=bool)
    roi[100:1111] = True
    start = RBSFitModel(
        replace(jabs_example_setup(), fluence_times_solid_angle_sr=2e14 * SOLID_ANGLE_SR),
        layers,
        free,
        solid_angle_sr=SOLID_ANGLE_SR,
    )
    fit = fit_spectrum(start, counts, roi)
    pulls = (fit.values - truth) / fit.std
    assert fit.converged and np.all(np.abs(pulls) < 3.5), pulls
    # the fitted experiment carries pile-up and background: simulate reproduces the fit
    again = experiment_from_dict(experiment_to_dict(start.experiment(fit.values), 5.0))
    spectrum = RBSFitModel.from_experiment(again, []).simulate(np.zeros((1, 0)))[0]
    torch.testing.assert_close(spectrum, torch.as_tensor(fit.expected), rtol=1e-8, atol=1e-8)
