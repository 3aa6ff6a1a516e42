"""The technique seam: the registry, plug-in techniques (defined only in tests/plugins), and
whole workflows of a regression and a multi-label technique through the same rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import run_snakemake
from specinv.config import ConfigError, validate_config
from specinv.data import dataset_config, read_dataset, sample_parameters, simulate_shard
from specinv.plan import PROFILE_FIGURES, REGRESSION_FIGURES, workflow_plan
from specinv.techniques import available, technique_class

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
PLUGINS = REPO / "tests" / "plugins"


def load(name: str) -> dict:
    return yaml.safe_load((DATA / name).read_text())


def test_registry_has_the_builtin_and_the_plugin_techniques():
    assert {"rbs", "test_peaks", "test_peak_labels"} <= set(available())
    assert technique_class("test_peak_labels").task == "multilabel"
    with pytest.raises(ConfigError, match="technique: expected one of .*rbs.*got 'xps'"):
        technique_class("xps")


def test_plugin_section_is_validated_by_its_own_schema():
    config = load("tiny_peaks.yaml")
    out = validate_config(config)
    assert out["test_peaks"]["peaks"][0]["position"]["law"] == "uniform"  # its default
    assert "law" not in config["test_peaks"]["peaks"][0]["position"]  # input untouched
    config["test_peaks"]["width"] = -1
    with pytest.raises(ConfigError, match=r"test_peaks.width: expected a value > 0, got -1"):
        validate_config(config)
    config = load("tiny_peaks.yaml")
    config["rbs"] = {"experiment": {}}
    with pytest.raises(ConfigError, match="unknown key.*'rbs'"):
        validate_config(config)
    config = load("tiny_peaks.yaml")
    config["test_peaks"]["x_max"] = -9.0
    with pytest.raises(ConfigError, match=r"test_peaks.x_max: expected a value above x_min"):
        dataset_config(config)


def test_signed_parameters_and_labels_are_sampled_and_simulated():
    cfg = dataset_config(load("tiny_peaks.yaml"))
    params = sample_parameters(cfg)
    pos = params["params"].sel(param="peak1:position").values
    assert (pos < 0).all() and (pos >= -5).all()  # signed, inside its prior
    assert list(params["param_units"].values) == ["mm", "counts", "mm", "counts"]
    shard = simulate_shard(cfg, params, 0, progress=False)
    assert shard["position_mm"].attrs["units"] == "mm"
    assert cfg.technique_instance.axis().label == "position (mm)"
    labels = dataset_config(load("tiny_peak_labels.yaml"))
    ds = sample_parameters(labels)
    present = ds["labels"].values
    assert ds["labels"].dims == ("sample", "label") and set(np.unique(present)) == {0, 1}
    assert np.array_equal(present, (ds["params"].values > 0).astype(np.int8))
    assert 0.3 < present.mean() < 0.7  # presence probability 0.5
    # the forward model of a present peak: its amplitude above the background at its place
    technique = labels.technique_instance
    one = torch.tensor([[0.0, 300.0, 0.0, 0.0]])
    spectrum = technique.simulate(one)[0].numpy()
    assert spectrum.max() == pytest.approx(4.0 + 300.0, rel=0.01)


def test_plans_follow_the_task():
    regression = workflow_plan(load("tiny_peaks.yaml"))
    assert regression.fit_methods == ["autofit", "cnn_autofit", "cnn_refine"]
    assert regression.tables["methods"] == "results/tiny_peaks/tables/methods.csv"
    labels = workflow_plan(load("tiny_peak_labels.yaml"))
    assert labels.kind == "classifier" and labels.fit_methods == []
    assert set(labels.tables) == {"runtimes", "classification", "models", "labels", "confusions"}
    rbs = workflow_plan(load("tiny.yaml"))
    assert rbs.tables["methods"].endswith("tables/table6_methods.csv")  # the paper's names
    # the accuracy figures for every regression technique, depth profiles where it has them
    xrd = workflow_plan(load("tiny_xrd.yaml"))
    accuracy = {"accuracy_vs_training_size", "predicted_vs_true"}
    assert accuracy <= set(rbs.figures) and "profile_examples" not in rbs.figures
    assert accuracy | {"profile_examples"} <= set(xrd.figures)
    assert xrd.figures["profile_examples"] == [
        "results/tiny_xrd/figures/profile_examples.png",
        "results/tiny_xrd/figures/profile_examples.pdf",
    ]
    assert rbs.figures["prediction_ratio"][0].endswith("fig8-10_prediction_ratio.png")
    assert not accuracy & set(labels.figures)


@pytest.mark.parametrize("name", ["rbs", "xrd", "test_peaks"])
def test_a_technique_has_depth_profiles_exactly_when_it_labels_them(name):
    config = load({"rbs": "tiny.yaml", "xrd": "tiny_xrd.yaml"}.get(name, "tiny_peaks.yaml"))
    technique = dataset_config(config).technique_instance
    assert set(technique.figure_parameters()) <= set(technique.parameter_names)
    low, high = technique.bounds()
    profiles = technique.depth_profiles(np.stack([low, high]))
    assert (profiles is None) == (technique.depth_profile_labels is None)
    if profiles is not None:
        depth, values = profiles
        assert depth.shape == values.shape and depth.shape[0] == 2


def run_workflow(tmp_path: Path, config: str) -> Path:
    shutil.copy(DATA / config, tmp_path / config)
    r = run_snakemake("--configfile", config, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp_path / "results" / yaml.safe_load((DATA / config).read_text())["name"]


@pytest.mark.slow
def test_a_plugin_regression_technique_runs_the_whole_dag(tmp_path):
    res = run_workflow(tmp_path, "tiny_peaks.yaml")
    methods = pd.read_csv(res / "tables/methods.csv", index_col=0)
    assert list(methods.index) == [
        "CNN60",
        "Autofit",
        "CNN60 + Autofit",
        "CNN60 + gradient refinement",
    ]
    assert (methods["spectra"] == 8).all()
    refined = read_dataset(res / "fits/cnn_refine.nc")
    est = refined["estimate"].values
    low = np.array([-5.0, 100.0, -1.0, 100.0])
    high = np.array([-1.0, 1000.0, 5.0, 1000.0])
    assert ((est >= low) & (est <= high)).all()  # the box, negative included
    assert (est[:, 0] < 0).all()  # not clipped at zero
    assert (refined["chi2"] <= refined["chi2_start"]).all()
    assert (refined["chi2"] < refined["chi2_start"]).any()
    for name in ("chi2", "coverage", "mre", "information_limit", "runtimes"):
        assert (res / f"tables/{name}.csv").exists(), name
    coverage = pd.read_csv(res / "tables/coverage.csv", index_col=0)
    assert coverage["ACS"].isna().all() and coverage["MRE"].notna().all()  # no std: no score
    assert "profile_examples" not in REGRESSION_FIGURES  # no depth profiles: not drawn
    assert not (res / "figures/profile_examples.png").exists()
    for name in REGRESSION_FIGURES:
        assert (res / f"figures/{name}.png").stat().st_size > 10_000, name
    assert not (res / "figures/profile_examples.png").exists()  # no depth profiles
    assert not (tmp_path / "results" / "example").exists()  # no example file: none
    predictions = read_dataset(res / "predictions/n60/test.nc")
    assert predictions.attrs["model_kind"] == "cnn"


@pytest.mark.slow
def test_the_xrd_technique_runs_the_whole_dag(tmp_path):
    """XRD (parameters of either sign in the box, log-intensity features) through sampling,
    simulation, preprocessing, training, prediction, fits and the tables."""
    res = run_workflow(tmp_path, "tiny_xrd.yaml")
    spectra = read_dataset(res / "data/spectra.nc")
    assert spectra["counts"].shape == (76, 121)
    assert "dq_over_q" in spectra.coords
    methods = pd.read_csv(res / "tables/methods.csv", index_col=0)
    assert list(methods.index) == [
        "CNN48",
        "Autofit",
        "CNN48 + Autofit",
        "CNN48 + Autofit + gradient refinement",
    ]
    refined = read_dataset(res / "fits/cnn_refine.nc")
    ml_autofit = read_dataset(res / "fits/cnn_autofit.nc")
    # refined from network + Autofit's result (fitting.refine_from), which it charges itself
    assert refined.attrs["start_method"] == "cnn_autofit"
    assert np.allclose(refined["start"], ml_autofit["estimate"])
    assert (refined["n_simulations"] > ml_autofit["n_simulations"]).all()
    assert refined.attrs["wall_seconds"] > ml_autofit.attrs["wall_seconds"]
    # fitted in log intensity (the technique's statistic), from 3 starts per curve
    assert refined.attrs["statistic"] == "log10"
    details = json.loads(refined.attrs["details"])
    assert details["starts"] == 3 and sum(details["best_start_share"]) == 4
    assert (refined["objective"] <= refined["objective_start"] + 1e-9).all()
    assert (refined["objective"] < refined["objective_start"]).any()
    assert (refined["n_simulations"] > 3).all()
    autofit = read_dataset(res / "fits/autofit.nc")
    assert autofit.attrs["statistic"] == "log10"
    assert np.isfinite(autofit["chi2"]).all() and (autofit["chi2"] > 0).all()
    # a measured curve (2θ) fitted from the run's network: put on the run's ΔQ/Q axis,
    # estimated, refined
    from specinv.cli import main

    experiment = tmp_path / "sample.yaml"
    experiment.write_text(
        "crystal: YSZ\nreflection: [4, 0, 0]\nwavelength_A: 1.5406\nslices: 12\n"
        "axis: {coordinate: two_theta_deg, start: 72.9, stop: 73.7, points: 161}\n"
        "sample:\n  strain_percent: [0.2, 0.5, 0.8, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.2]\n"
        "  thickness_nm: 300\n  dw_min: 0.7\n  fwhm_deg: 0.02\n  dynamic_range: 4\n"
        "  log10_peak: 4\n"
    )
    curve = tmp_path / "curve.csv"
    assert main(["xrd", "simulate", str(experiment), "-o", str(curve)]) == 0
    fitted = tmp_path / "fit.csv"
    args = ["xrd", "fit", str(curve), str(experiment), "-o", str(fitted), "--iterations", "2"]
    assert main([*args, "--network", str(res), "--size", "48"]) == 0
    assert fitted.stat().st_size > 0
    assert main([*args, "--network", str(res), "--size", "7"]) == 2  # a one-line error
    transform = json.loads((res / "preprocessing/transform.json").read_text())
    assert transform["settings"]["log"] is True and transform["settings"]["merge"] == 1
    for name in (*REGRESSION_FIGURES, *PROFILE_FIGURES):
        assert (res / f"figures/{name}.png").stat().st_size > 10_000, name
        assert (res / f"figures/{name}.pdf").stat().st_size > 5_000, name


@pytest.mark.slow
def test_a_plugin_multilabel_technique_runs_the_whole_dag(tmp_path):
    res = run_workflow(tmp_path, "tiny_peak_labels.yaml")
    summary = pd.read_csv(res / "tables/classification.csv", index_col=0)
    assert list(summary.index) == [40, 80]
    assert summary["weighted_F1"].between(0, 1).all()
    labels = pd.read_csv(res / "tables/labels.csv", index_col=0)
    assert list(labels.index) == ["peak@-4.5", "peak@-1.5", "peak@1.5", "peak@4.5"]
    predictions = read_dataset(res / "predictions/n80/test.nc")
    p = predictions["probability"].values
    assert p.shape == (30, 4) and ((p >= 0) & (p <= 1)).all()
    for name in ("classification_vs_training_size", "label_scores", "prediction_examples"):
        assert (res / f"figures/{name}.png").stat().st_size > 10_000
    assert not (res / "fits").exists()  # no fits for a classifier


@pytest.mark.slow
def test_the_eels_workflow_runs_with_a_mixed_ensemble(tmp_path):
    """Sampling -> training of a ViT and a U-Net -> the paper's scores with the balanced
    threshold, each kind alone and the ensemble, on 3072-channel spectra."""
    res = run_workflow(tmp_path, "tiny_eels.yaml")
    summary = pd.read_csv(res / "tables/classification.csv", index_col=0)
    assert list(summary.index) == [48, 96]
    assert summary["threshold"].between(0, 1, inclusive="neither").all()
    for column in ("weighted_F1", "weighted_precision", "weighted_recall", "rmse"):
        assert summary[column].between(0, 1).all(), column
    models = pd.read_csv(res / "tables/models.csv", index_col=0)
    assert list(models.index) == ["vit", "unet", "ViT + U-Net"]
    assert list(models["networks"]) == [1, 1, 2]
    assert (models["ms_per_spectrum"] > 0).all()
    labels = pd.read_csv(res / "tables/labels.csv", index_col=0)
    assert len(labels) == 80 and labels.index[0] == "Be" and labels.index[-1] == "Bi"
    assert (res / "tables/confusions.csv").exists()
    test = read_dataset(res / "predictions/n96/test.nc")
    assert test["member_probability"].shape == (2, 32, 80)
    assert list(test["member_kind"].values) == ["vit", "unet"]
    assert read_dataset(res / "predictions/n96/validation.nc").sizes["sample"] == 32
    transform = json.loads((res / "preprocessing/transform.json").read_text())
    assert transform["settings"]["normalize"] == "max"
    for name in ("classification_vs_training_size", "label_scores", "prediction_examples"):
        assert (res / f"figures/{name}.png").stat().st_size > 10_000
    assert not (res / "fits").exists()
    from specinv.cli import main

    # element maps of a simulated superlattice by the run's ensemble
    figure, table = tmp_path / "maps.png", tmp_path / "maps.csv"
    args = ["eels", "map", "--network", str(res), "-o", str(figure), "--csv", str(table)]
    assert main([*args, "--layers", "SrTiO3:2,LaMnO3:2", "--columns", "3"]) == 0
    maps = pd.read_csv(table)
    assert len(maps) == 12 and list(maps["layer"].unique()) == [0, -1, 1]
    assert figure.stat().st_size > 5_000
    assert main([*args, "--layers", "SrTiO3"]) == 2  # formula:rows expected
    # a "measured" spectrum (two columns, 0.5 eV per channel) identified and quantified
    energy = np.arange(300.0, 900.0, 0.5)
    spectrum = tmp_path / "measured.txt"
    spectrum.write_text(
        "energy_eV counts\n"
        + "".join(f"{e} {1e5 * (e / 300) ** -3 * (1 + (e > 456) * 0.5)}\n" for e in energy)
    )
    out = tmp_path / "identified.csv"
    ident = ["eels", "identify", str(spectrum), "--network", str(res), "-o", str(out)]
    assert main([*ident, "--plot", str(tmp_path / "identified.png")]) == 0
    identified = pd.read_csv(out)
    assert len(identified) == 80 and identified["probability"].between(0, 1).all()
    assert main([*ident, "--quantify", "--beam-kv", "200"]) == 2  # the angles are missing


def test_the_workflow_schema_file_points_at_the_library_schema():
    """workflow/schemas/config.schema.yaml (for Snakemake's validate, editors, the catalog)
    is the library's generic schema: it accepts the default configuration and rejects what
    the library rejects."""
    import copy

    from snakemake.utils import validate

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(copy.deepcopy(config), str(schema))
    config["data"]["sizes"]["train"] = "many"
    with pytest.raises(Exception, match="'many' is not of type 'integer'"):
        validate(config, str(schema), set_default=False)
    with pytest.raises(ConfigError, match="data.sizes.train: expected integer, got 'many'"):
        validate_config(config)
