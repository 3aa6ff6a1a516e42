"""Experiment design (``specinv rbs design``): candidate setups compared by the Cramér–Rao
bounds of the same draws from the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from specinv.cli import main
from specinv.config import ConfigError, load_mapping_file
from specinv.data.config import dataset_config
from specinv.physics.rbs.nonrutherford import non_rutherford_onset_keV
from specinv.techniques.rbs.design import (
    AS_CONFIGURED,
    changed_experiment,
    changed_section,
    design_table,
    evaluate_setups,
    parse_candidates,
    printable_design,
    setup_summary,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_section():
    return dataset_config(load_mapping_file(DATA / "tiny.yaml")).section


def test_changes_are_dotted_keys_of_the_experiment():
    experiment = {"beam": {"ion": "3He", "energy_keV": 2950}, "fluence_times_solid_angle_sr": 1e9}
    out = changed_experiment(experiment, {"beam.energy_keV": 2000, "geometry.scattering_deg": 170})
    assert out["beam"] == {"ion": "3He", "energy_keV": 2000}
    assert out["geometry"] == {"scattering_deg": 170}
    assert experiment["beam"]["energy_keV"] == 2950  # the original is left alone
    with pytest.raises(ConfigError, match="experiment.beam is a section"):
        changed_experiment(experiment, {"beam": 3})
    with pytest.raises(ConfigError, match="fluence_times_solid_angle_sr is 1000000000.0, not"):
        changed_experiment(experiment, {"fluence_times_solid_angle_sr.x": 3})
    with pytest.raises(ConfigError, match="dotted key"):
        changed_experiment(experiment, {"beam..ion": "4He"})


def test_candidates_from_a_document_and_from_vary():
    out = parse_candidates(
        {"alpha": {"beam.ion": "4He", "beam.energy_keV": 2000}},
        ["beam.energy_keV=1500,3000.5", "beam.ion=1H"],
    )
    assert list(out) == [
        AS_CONFIGURED,
        "alpha",
        "beam.energy_keV=1500",
        "beam.energy_keV=3000.5",
        "beam.ion=1H",
    ]
    assert out[AS_CONFIGURED] == {}
    assert out["beam.energy_keV=1500"] == {"beam.energy_keV": 1500}
    assert out["beam.energy_keV=3000.5"] == {"beam.energy_keV": 3000.5}
    assert out["beam.ion=1H"] == {"beam.ion": "1H"}
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        parse_candidates(None, ["beam.energy_keV"])
    with pytest.raises(ConfigError, match="candidates.alpha: expected a mapping"):
        parse_candidates({"alpha": 3}, [])


def test_bounds_scale_as_one_over_root_fluence_on_the_same_draws(tiny_section):
    """The expected counts are proportional to the fluence: so is the Fisher information,
    and every bound shrinks by exactly 1/2 for 4 times the fluence."""
    fluence = tiny_section["experiment"]["fluence_times_solid_angle_sr"]
    results = evaluate_setups(
        tiny_section,
        {"x1": {}, "x4": {"fluence_times_solid_angle_sr": 4 * fluence}},
        n_spectra=6,
        first_channel=100,
        progress=False,
    )
    one, four = (results[k].information for k in ("x1", "x4"))
    np.testing.assert_array_equal(one["true"], four["true"])  # the same draws
    assert np.isfinite(one["crlb_std"]).all()
    np.testing.assert_allclose(four["crlb_std"], 0.5 * one["crlb_std"], rtol=1e-9)
    np.testing.assert_allclose(results["x4"].counts, 4 * results["x1"].counts, rtol=1e-12)
    table = design_table(results)
    np.testing.assert_allclose(
        table.loc["x4", "efficient_MRE"], 0.5 * table.loc["x1", "efficient_MRE"], rtol=1e-6
    )
    summary = setup_summary(results, table)
    assert list(summary.index) == ["x1", "x4"]
    # 3He at 2950 keV is beyond the estimated non-Rutherford onset of D, far below W's
    assert summary.loc["x1", "non_Rutherford"] == "D (~0.9 MeV)"
    assert summary.loc["x1", "channels"] == 1000  # channels 100 ... 1099
    assert summary.loc["x4", "changes"] == f"fluence_times_solid_angle_sr={4 * fluence}"


def test_a_beam_that_cannot_cross_the_sample_leaves_its_parameters_undetermined(tiny_section):
    """At 800 keV the 3He ions are stopped in thick W layers, or their particles leave
    below the region of interest: those spectra do not determine the layers' contents;
    at 2950 keV every draw is determined."""
    results = evaluate_setups(
        tiny_section,
        {"2950 keV": {}, "800 keV": {"beam.energy_keV": 800}},
        n_spectra=8,
        first_channel=100,
        progress=False,
    )
    table = design_table(results)
    assert (table.loc["2950 keV", "undetermined"] == 0).all()
    low = table.loc["800 keV", "undetermined"]
    assert (low > 0).all() and low["layer2:W"] >= low["layer1:W"]
    assert not table.loc["800 keV", "determined"].any()
    printed = printable_design(table)
    assert list(printed.columns) == ["2950 keV", "800 keV"]
    assert printed.loc["layer1:W", "800 keV"].startswith("inf / ")


def test_the_command_writes_its_tables_and_figure(tmp_path, capsys):
    out = tmp_path / "design"
    args = ["rbs", "design", str(DATA / "tiny.yaml"), "-n", "3", "-o", str(out)]
    assert main([*args, "--vary", "beam.energy_keV=2000"]) == 0
    printed = capsys.readouterr().out
    assert "efficient MRE (%)" in printed and "beam.energy_keV=2000" in printed
    table = pd.read_csv(out / "design.csv", index_col=[0, 1])
    assert set(table.index.get_level_values("setup")) == {AS_CONFIGURED, "beam.energy_keV=2000"}
    assert (out / "setups.csv").exists() and (out / "design.png").stat().st_size > 10_000
    # bad candidates are refused before any bound is computed, naming the candidate
    assert main([*args, "--vary", "beam.ion=Xx"]) == 2
    assert "candidate 'beam.ion=Xx'" in capsys.readouterr().err
    assert main([*args, "--vary", "geometry.scattering_deg=abc"]) == 2
    assert "geometry.scattering_deg=abc" in capsys.readouterr().err
    assert main([*args, "-n", "0"]) == 2
    assert "--spectra" in capsys.readouterr().err
    assert main(["rbs", "design", str(DATA / "tiny_xrd.yaml"), "-o", str(out)]) == 2
    assert "expected rbs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("element", "measured_keV"),
    [("O", 2350), ("F", 2600), ("Mg", 3200), ("Al", 3600), ("Si", 3800), ("Cl", 4500)],
)
def test_the_non_rutherford_onset_estimate_is_below_the_measured_ones(element, measured_keV):
    """Cheng et al.'s onsets for 4He near 170°: the estimate (0.48 of the laboratory
    Coulomb barrier) is at most the measured onset and within 20 % of it."""
    onset = non_rutherford_onset_keV("4He", element)
    assert 0.8 * measured_keV < onset <= measured_keV
    # heavier nuclei hold out longer; protons get no estimate
    assert non_rutherford_onset_keV("4He", "Ni") > onset
    assert non_rutherford_onset_keV("1H", element) is None


@pytest.mark.parametrize("dataset, n_parameters", [("B", 15), ("C", 31)])
def test_the_committed_candidates_of_datasets_b_and_c_build(dataset, n_parameters):
    """Every candidate of the committed design studies builds, and the "before" candidate
    restores the setup the datasets had before issue 19."""
    from specinv.techniques.rbs.technique import RBSTechnique

    repo = DATA.parents[1]
    config = load_mapping_file(repo / f"config/paper/rbs_{dataset}.yaml")
    section = dataset_config(config).section
    document = load_mapping_file(repo / f"examples/design_rbs_{dataset}_candidates.yaml")
    candidates = parse_candidates(document)
    assert len(candidates) == len(document) + 1
    for changes in candidates.values():
        technique = RBSTechnique.from_config(changed_section(section, changes))
        assert technique.n_parameters == n_parameters
    (before,) = (changes for name, changes in candidates.items() if name.startswith("before"))
    old = changed_section(section, before)
    assert old["sample"]["prior"] == {"law": "uniform", "low": 50, "high": 5000}
    assert (old["experiment"]["beam"]["ion"], old["experiment"]["beam"]["energy_keV"]) == (
        "3He",
        2950,
    )
    assert old["experiment"]["detector"]["calibration"]["gain_keV_per_channel"] == 2.637


def test_signals_above_the_detector_range_are_named(tiny_section):
    """The tiny setup's 1100 channels of 2.637 keV end at 2901 keV: 3He from W at 150°
    comes back at K·E0 = 0.94 E0, inside at 2950 keV, above it at 3500 keV."""
    from specinv.techniques.rbs.design import above_detector
    from specinv.techniques.rbs.technique import RBSTechnique

    def build(changes):
        experiment = changed_experiment(tiny_section["experiment"], changes)
        return RBSTechnique.from_config({**tiny_section, "experiment": experiment})

    assert above_detector(build({})) == ()
    (entry,) = above_detector(build({"beam.energy_keV": 3500}))
    assert entry.startswith("W (") and 3250 < float(entry[3:].split()[0]) < 3350


def test_a_candidate_may_change_the_prior_and_draws_the_same_quantiles(tiny_section):
    """``sample.prior.*`` keys change the default prior: a prior ten times thinner maps
    the same uniform numbers to parameter sets exactly ten times smaller (a parameter with
    its own prior keeps it); the layer structure cannot change, and a bad prior is refused
    naming the candidate."""
    prior = tiny_section["sample"]["prior"]
    assert prior["law"] == "uniform"
    thin = {"sample.prior.low": prior["low"] / 10, "sample.prior.high": prior["high"] / 10}
    results = evaluate_setups(
        tiny_section, {"thick": {}, "thin": thin}, n_spectra=4, first_channel=100, progress=False
    )
    thick_draws, thin_draws = (results[k].information["true"] for k in ("thick", "thin"))
    own_prior = thin_draws["param"] == "layer2:W"  # loguniform [100, 5000] in tiny.yaml
    np.testing.assert_allclose(
        thin_draws.where(~own_prior, drop=True),
        thick_draws.where(~own_prior, drop=True) / 10,
        rtol=1e-12,
    )
    np.testing.assert_array_equal(
        thin_draws.sel(param="layer2:W"), thick_draws.sel(param="layer2:W")
    )
    # thinner layers send fewer particles back
    assert (results["thin"].counts < results["thick"].counts).all()
    section = changed_section(tiny_section, {"sample.prior.high": 7, "beam.energy_keV": 2000})
    assert section["sample"]["prior"]["high"] == 7
    assert section["experiment"]["beam"]["energy_keV"] == 2000
    assert tiny_section["sample"]["prior"]["high"] == prior["high"]  # the input is unchanged
    with pytest.raises(ConfigError, match="may change the prior, not the layer structure"):
        changed_section(tiny_section, {"sample.layers": []})
    with pytest.raises(ConfigError, match="candidate 'bad'"):
        evaluate_setups(
            tiny_section,
            {"bad": {"sample.prior.high": -1}},
            n_spectra=2,
            first_channel=100,
            progress=False,
        )
