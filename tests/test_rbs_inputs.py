"""Bad input gives clear errors naming the field; good input round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from specinv.physics.rbs import (
    ExperimentError,
    RBSSimulator,
    experiment_from_dict,
    load_experiment,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "rbs_W_D_2layers.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def modified(path: str, value) -> dict:
    data = example()
    *keys, last = path.split(".")
    node = data
    for k in keys:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def test_example_file_loads():
    exp = load_experiment(EXAMPLE)
    assert exp.structure == (("W", "D"), ("W", "D"))
    assert exp.areal_densities == [1000.0, 3000.0, 4000.0, 500.0]
    assert exp.setup.exit_angle_deg == pytest.approx(15.0)
    assert exp.setup.fluence_times_solid_angle_sr == pytest.approx(1e11)


def test_json_and_yaml_give_the_same_experiment(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(example()))
    assert load_experiment(path) == load_experiment(EXAMPLE)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("sample.layers.0", {"Xx": 100}, "unknown element 'Xx'"),
        ("sample.layers.0", {"99W": 100}, "unknown isotope '99W'"),
        ("sample.layers.1", {"W": -5}, "sample.layers[1].W"),
        ("sample.layers.1", {"W": float("nan")}, "finite"),
        ("sample.layers.1", {"W": float("inf")}, "finite"),
        ("sample.layers.0", {}, "sample.layers[0]"),
        ("sample.layers", [], "sample.layers"),
        ("geometry.incidence_deg", 90, "geometry.incidence_deg"),
        ("geometry.incidence_deg", 95, "geometry.incidence_deg"),
        ("geometry.scattering_deg", 80, "geometry.exit_deg"),  # IBM: beta = 100 deg
        ("geometry.exit_deg", 90, "geometry.exit_deg"),
        ("beam.energy_keV", 0, "beam.energy_keV"),
        ("beam.energy_keV", -3000, "beam.energy_keV"),
        ("beam.energy_keV", "fast", "beam.energy_keV"),
        ("beam.ion", "Qq", "beam.ion"),
        ("detector.channels", 0, "detector.channels"),
        ("detector.channels", 10.5, "detector.channels"),
        ("detector.resolution_fwhm_keV", 0, "detector.resolution_fwhm_keV"),
        ("detector.calibration.gain_keV_per_channel", -3, "gain_keV_per_channel"),
        ("energy_cutoff_keV", 0, "energy_cutoff_keV"),
        ("energy_cutoff_keV", 5000, "energy_cutoff_keV"),
        ("physics.screening", "thomas-fermi", "physics.screening"),
        ("physics.straggling", "yang", "physics.straggling"),
        ("beam.energy_kev", 3000, "unknown key(s) energy_kev"),
        ("beam.energy_keV", None, "beam.energy_keV: missing"),
        ("fluence", None, "fluence"),
    ],
)
def test_bad_values_name_the_field(path, value, message):
    with pytest.raises(ExperimentError, match=None) as info:
        experiment_from_dict(modified(path, value))
    assert message in str(info.value), str(info.value)


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("beam: {ion: 4He, energy_keV: 3000\ngeometry: [")
    with pytest.raises(ExperimentError, match="broken.yaml: malformed YAML"):
        load_experiment(bad)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ExperimentError, match="nothere.yaml: cannot read"):
        load_experiment(tmp_path / "nothere.yaml")


def test_errors_from_files_name_file_and_key(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(modified("detector.channels", 0)))
    with pytest.raises(ExperimentError, match=r"exp\.yaml: detector\.channels"):
        load_experiment(path)


def test_simulator_rejects_bad_areal_densities():
    sim = RBSSimulator.from_experiment(load_experiment(EXAMPLE), device="cpu")
    for bad, what in ((-1.0, "layer1:D"), (float("nan"), "layer1:D"), (float("inf"), "layer1:D")):
        with pytest.raises(ValueError, match=what):
            sim.simulate(torch.tensor([[1000.0, bad, 4000.0, 500.0]]))
    with pytest.raises(ValueError, match=r"expected shape \[B, 4\]"):
        sim.simulate(torch.ones(2, 3))
    for bad in (-1, 2, 0.5):
        with pytest.raises(
            ValueError,
            match=r"first_layer: expected an integer layer index in "
            r"\[0, 1\]",
        ):
            sim.simulate(torch.ones(1, 4), first_layer=bad)


def test_zero_thickness_layers_are_allowed():
    sim = RBSSimulator.from_experiment(load_experiment(EXAMPLE), device="cpu")
    y = sim.simulate(torch.tensor([[0.0, 0.0, 4000.0, 500.0], [1000.0, 3000.0, 0.0, 0.0]]))
    assert torch.isfinite(y).all() and (y >= 0).all() and (y.sum(1) > 0).all()
