"""The EELS technique: sampling, labels, configuration errors and the simulate command."""

from __future__ import annotations

import numpy as np
import pytest

from specinv.cli import main
from specinv.config import ConfigError
from specinv.config.schema import validate
from specinv.techniques import technique_class


def technique(**section):
    cls = technique_class("eels")
    validate(section, cls.config_schema, "eels")
    return cls.from_config(section)


@pytest.fixture(scope="module")
def eels():
    return technique()


def test_sampling_balances_the_elements_and_labels_only_what_is_in_range(eels):
    u = np.random.default_rng(0).random((4000, eels.n_uniforms))
    params = eels.sample(u)
    sim = eels.simulator
    labels = eels.targets(params)
    assert labels.shape == (4000, 80) and set(np.unique(labels)) == {0, 1}
    # every spectrum shows its query element; the elements appear about equally often
    assert labels.sum(1).min() >= 1
    counts = labels.sum(0)
    assert counts.min() > 0.4 * counts.mean()
    # an element present in the sample but without an edge in range is not labelled
    present = params[:, :80] > 0
    assert (labels <= present).all() and (labels < present).any()
    start, end = params[:, sim.column["start_eV"]], params[:, sim.column["end_eV"]]
    assert (start >= 75).all() and (end <= 3071).all() and (end - start >= 35).all()
    low, high = eels.bounds()
    assert ((params >= low) & (params <= high)).all()
    # the same uniforms give the same spectra parameters
    np.testing.assert_array_equal(eels.sample(u[:10]), params[:10])


@pytest.mark.parametrize(
    "section, message",
    [
        ({"conditions": {"jump_ratio": {"low": 1.0, "high": 0.5}}}, "conditions.jump_ratio"),
        ({"elements_per_spectrum": {"low": 0, "high": 3}}, "elements_per_spectrum.low"),
        ({"conditions": {"zlp_fwhm_eV": {"low": 0, "high": 3}}}, "conditions.zlp_fwhm_eV.low"),
        ({"conditions": {"detector_range_eV": {"low": 75, "high": 90}}}, "detector_range_eV"),
    ],
)
def test_bad_sections_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        technique(**section)


def test_simulate_an_oxide_from_its_formula(tmp_path, capsys):
    experiment = tmp_path / "SrTiO3.yaml"
    experiment.write_text(
        "composition: SrTiO3\nconditions: {start_eV: 100, end_eV: 2300, seed: 3}\n"
    )
    out, plot = tmp_path / "SrTiO3.csv", tmp_path / "SrTiO3.png"
    assert main(["eels", "simulate", str(experiment), "-o", str(out), "--plot", str(plot)]) == 0
    assert "elements with an edge in range: O, Ti, Sr" in capsys.readouterr().out
    table = np.loadtxt(out, delimiter=",", skiprows=1)
    assert table.shape == (3072, 2)
    counts = table[:, 1]
    assert (counts[100:2301] > 0).all() and (counts[:100] == 0).all()
    # the Ti L and O K edges rise where the tables put them
    assert counts[460:470].mean() > 1.1 * counts[445:452].mean()
    assert plot.stat().st_size > 20_000


@pytest.mark.parametrize(
    "text, message",
    [
        ("composition: XyO2\n", "composition: not a chemical formula"),
        ("composition: {H: 2, O: 1}\n", "composition.H: expected one of the elements Be"),
        ("composition: TiO2\nconditions: {voltage: 200}\n", "conditions.voltage: unknown"),
        ("composition: TiO2\nconditions: {start_eV: 900, end_eV: 800}\n", "start_eV < end_eV"),
    ],
)
def test_bad_experiment_files_are_named(tmp_path, capsys, text, message):
    experiment = tmp_path / "bad.yaml"
    experiment.write_text(text)
    assert main(["eels", "simulate", str(experiment), "-o", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and message in err
