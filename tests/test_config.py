"""Configuration: the schemas as the one source of defaults, errors that name the key, and
the canonical text that decides reruns."""

from __future__ import annotations

import copy

import pytest

from conftest import tiny_config
from specinv.config import ConfigError, canonical, schema_default, validate_config
from specinv.data import preprocess_settings
from specinv.fitting.settings import FitSettings
from specinv.plan import workflow_plan
from specinv.techniques.rbs import RBSTechnique
from specinv.training import TrainingSettings


def test_defaults_come_from_the_schemas_and_the_input_is_not_changed():
    config = tiny_config()
    before = copy.deepcopy(config)
    out = validate_config(config)
    assert config == before
    assert out["data"]["shards"] == 3 and out["data"]["seed"] == 0  # given, and default
    assert out["fitting"]["autofit_start"] == "centre"
    assert out["rbs"]["experiment"]["physics"] == {
        "screening": "andersen",
        "straggling": "bohr",
        "nuclear_stopping": True,
    }
    # the library's settings read the same defaults (no second copy of them)
    assert FitSettings().restart_every == schema_default("fitting", "restart_every") == 500
    assert TrainingSettings().epochs == schema_default("training", "epochs") == 100
    assert FitSettings.from_config(out) == FitSettings(**tiny_config()["fitting"])
    validate_config(config, in_place=True)
    assert config == out


def test_the_technique_gives_its_preprocessing_defaults():
    settings = preprocess_settings(
        {"preprocessing": {"merge": 2}}, RBSTechnique.preprocessing_defaults
    )
    assert (settings.first_channel, settings.merge, settings.savgol_window) == (100, 2, 7)
    neutral = preprocess_settings({})
    assert (neutral.first_channel, neutral.merge, neutral.savgol_window) == (0, 1, 0)
    with pytest.raises(ConfigError, match="preprocessing.prune: expected one of variance, none"):
        preprocess_settings({"preprocessing": {"prune": "sometimes"}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(experiment=c["rbs"].pop("experiment")), "move it there"),
        (lambda c: c.update(traning={"epochs": 3}), "unknown key(s) 'traning'"),
        (lambda c: c.pop("rbs"), "rbs: the section of technique 'rbs' is missing"),
        (lambda c: c.update(technique="xps"), "technique: expected one of"),
        (lambda c: c["data"].update(noise="gaussian"), "data.noise: expected one of poisson, none"),
        (lambda c: c["data"].update(shardz=2), "data: unknown key(s) 'shardz'"),
        (
            lambda c: c["rbs"]["experiment"]["beam"].update(energy_keV=-5),
            "rbs.experiment.beam.energy_keV: expected a value > 0, got -5",
        ),
        (lambda c: c["rbs"]["sample"]["layers"][0].update({"Qx": None}), "unknown element 'Qx'"),
        (
            lambda c: c["rbs"]["sample"]["layers"][1].update({"W": {"low": 900, "high": 100}}),
            "sample.layers[1].W: lower bound low=900 is above the upper bound high=100",
        ),
        (
            lambda c: c["rbs"]["sample"]["layers"][0].update(
                {"W": {"law": "loguniform", "low": 0, "high": 10}}
            ),
            "sample.layers[0].W.low",
        ),
        (lambda c: c["rbs"]["experiment"]["beam"].update({"energy_keV": -1}), "beam.energy_keV"),
        (lambda c: c["data"]["sizes"].update({"test": -5}), "data.sizes.test"),
        (lambda c: c["data"].update({"shards": 1000}), "data.shards"),
        (
            lambda c: c["rbs"]["experiment"]["geometry"].update({"incidence_deg": 95}),
            "rbs.experiment: geometry.incidence_deg",
        ),
        (
            lambda c: c["rbs"]["experiment"]["beam"].update({"energy_kev": 5}),
            "rbs.experiment.beam: unknown key(s) 'energy_kev'",
        ),
        (lambda c: c["training"].update(sizes=[30, 30]), "training.sizes: expected distinct"),
        (lambda c: c["training"].update(sizes=[30, 6000]), "training.sizes: 6000 is larger"),
        (lambda c: c["evaluation"].update(model_size=45), "evaluation.model_size: 45 is not"),
        (lambda c: c["model"].update(kind="classifier"), "model.kind: 'classifier' solves"),
        (lambda c: c["fitting"].update(shards=9), "fitting.shards: 9 fit jobs for 8 fitted"),
    ],
)
def test_bad_configurations_name_the_key(change, message):
    config = tiny_config()
    change(config)
    with pytest.raises(ConfigError) as info:
        workflow_plan(config)
    assert message in str(info.value)


def test_canonical_text_ignores_the_order_of_keys():
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical({"b": 1, "a": {"y": [2, 1], "x": None}})
    # so the plan's rule parameters too
    reordered = dict(reversed(list(tiny_config().items())))
    assert workflow_plan(reordered).params() == workflow_plan(tiny_config()).params()
