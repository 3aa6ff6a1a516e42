"""Bad input of every kind is refused with a one-line error naming the file, key or option and
what was expected, before any work starts (issue 15; the README's table "Bad input")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, tiny_config
from specinv.cli import main
from specinv.config import ConfigError, check_tree, load_mapping_file, validate_config
from specinv.config.files import MAX_NODES
from specinv.physics.rbs import load_experiment
from specinv.physics.rbs.experiment import ExperimentError
from specinv.plan import workflow_plan

EXAMPLE = REPO / "examples" / "rbs_W_D_2layers.yaml"
#: a "billion laughs" document: 10**7 values once its aliases are expanded, 400 bytes written
BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 10 if p else ['x'] * 10)}]\n"
    for p, k in zip([None, "a", "b", "c", "d", "e"], "abcdef", strict=True)
)


def simulate(tmp_path: Path, experiment: Path, *options: str) -> tuple[int, str]:
    """Run ``specinv rbs simulate`` in a fresh interpreter: (exit code, stderr)."""
    r = subprocess.run(
        [sys.executable, "-m", "specinv", "rbs", "simulate", str(experiment), *options],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    return r.returncode, r.stderr


def one_line_error(stderr: str) -> str:
    """The error of a refused command: no traceback, one line."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(("specinv: error:", "specinv rbs simulate: error:"))
    return lines[-1]


# ------------------------------------------------------------------ numbers as written
EXPONENTS = {
    "energy_keV: 3000": "energy_keV: 3e3",
    "gain_keV_per_channel: 3.0": "gain_keV_per_channel: 3e0",
    "energy_cutoff_keV: 50": "energy_cutoff_keV: 5e1",
    "scattering_deg: 165": "scattering_deg: 1.65e2",
    "resolution_fwhm_keV: 15": "resolution_fwhm_keV: 1.5e1",
    "offset_keV: 0": "offset_keV: 0e1",
    "energy_spread_fwhm_keV: 0": "energy_spread_fwhm_keV: 0e0",
    "fluence: 1.0e13": "fluence: 1e13",
}


@pytest.mark.parametrize(
    "replacements",
    [
        EXPONENTS,
        {"energy_keV: 3000": 'energy_keV: "3000"', "channels: 1024": "channels: '1024'"},
        {"{W: 1000, D: 3000}": "{W: 1e3, D: 3e3}"},
    ],
    ids=["exponents", "quoted", "areal-densities"],
)
def test_numbers_in_exponent_notation_and_quoted_numbers_are_numbers(tmp_path, replacements):
    text = EXAMPLE.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    assert load_experiment(path) == load_experiment(EXAMPLE)
    out = tmp_path / "spectrum.csv"
    assert main(["rbs", "simulate", str(path), "-o", str(out)]) == 0
    reference = tmp_path / "reference.csv"
    assert main(["rbs", "simulate", str(EXAMPLE), "-o", str(reference)]) == 0
    assert np.array_equal(
        np.loadtxt(out, delimiter=",", skiprows=1), np.loadtxt(reference, delimiter=",", skiprows=1)
    )


def test_a_workflow_config_accepts_numbers_in_exponent_notation():
    config = tiny_config()
    # what Snakemake's YAML 1.1 reader makes of `1.7e11` and `[1e-3, 5e-4]`
    config["rbs"]["experiment"]["fluence_times_solid_angle_sr"] = "1.7e11"
    config["rbs"]["experiment"]["beam"]["energy_keV"] = "2950"
    config["training"]["learning_rates"] = ["1e-3", "5e-4"]
    plan = workflow_plan(config)
    assert plan.config["rbs"]["experiment"]["fluence_times_solid_angle_sr"] == 1.7e11
    assert plan.training.learning_rates == [1e-3, 5e-4]
    assert plan.dataset.data_hash() == workflow_plan(tiny_config()).dataset.data_hash()
    config = tiny_config()
    config["name"] = "1e3"  # a string where the schema wants one stays a string
    assert workflow_plan(config).name == "1e3"


# ------------------------------------------------------------------ unreadable files
FILES = {
    "binary": (bytes(range(256)) * 4, "a binary file (NUL bytes)"),
    "latin-1": ("beam: {ion: 4He}  # Müller\n".encode("latin-1"), "not UTF-8 text (byte 0xfc"),
    "utf-16": (EXAMPLE.read_text().encode("utf-16"), "UTF-16 text; expected UTF-8"),
    "deep": (("a: " + "[" * 3000 + "]" * 3000 + "\n").encode(), "nested deeper than 32"),
    "deep-json": (("[" * 3000 + "]" * 3000).encode(), "nested deeper than 32"),
    "alias-bomb": (
        (EXAMPLE.read_text() + BOMB + "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n").encode(),
        "its aliases (*name) expand to",
    ),
    "duplicate-key": (
        EXAMPLE.read_text().replace("{W: 1000, D: 3000}", "{W: 1000, D: 3000, W: 5}").encode(),
        "key 'W' given twice (lines 28 and 28)",
    ),
    "duplicate-section": (
        (EXAMPLE.read_text() + "fluence: 2.0e13\n").encode(),
        "key 'fluence' given twice (lines 20 and 30)",
    ),
    "duplicate-json-key": (b'{"beam": {}, "beam": {}}', "key 'beam' given twice"),
    "empty": (b"", "empty; expected a mapping"),
    "not-a-mapping": (b"- 1\n- 2\n", "expected a mapping of keys to values"),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_unreadable_experiment_files_are_refused_in_one_line(tmp_path, kind):
    raw, message = FILES[kind]
    path = tmp_path / ("exp.json" if "json" in kind else "exp.yaml")
    path.write_bytes(raw)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert str(path) in str(info.value) and message in str(info.value), str(info.value)
    code, stderr = simulate(tmp_path, path, "-o", "out.csv")
    assert code == 2
    assert message in one_line_error(stderr)
    assert not (tmp_path / "out.csv").exists()


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 5\n")
    assert load_mapping_file(path)["other"] == {"x": 5, "y": 2}


def test_an_alias_bomb_in_a_workflow_config_is_refused_before_validation(tmp_path):
    config = tiny_config()
    level = ["x"] * 10
    for _ in range(7):  # 10**7 references to shared lists, as a YAML reader builds them
        level = [level] * 10
    config["example"] = {"experiment": level}
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES} values"):
        validate_config(config)
    with pytest.raises(ConfigError, match="nested deeper than 32"):
        deep: list = [1]
        for _ in range(40):
            deep = [deep]
        check_tree({"a": deep})
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    with pytest.raises(ConfigError, match="bomb.yaml: its aliases"):
        workflow_plan(tiny_config(), files=[path])


def test_a_duplicate_key_in_a_workflow_config_file_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    text = (REPO / "tests" / "data" / "tiny.yaml").read_text()
    path.write_text(text + "name: other\n")
    with pytest.raises(ConfigError, match=r"config.yaml: key 'name' given twice \(lines 2 and"):
        workflow_plan(yaml.safe_load(text), files=[path])


# ------------------------------------------------------------------ command-line options
def test_output_naming_a_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    code, stderr = simulate(tmp_path, EXAMPLE, "-o", "out")
    assert code == 2
    assert "-o/--output: 'out' is a folder; expected a file name" in one_line_error(stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_work(tmp_path):
    code, stderr = simulate(tmp_path, EXAMPLE, "-o", "x.csv", "--device", "cuda")
    assert code == 2
    assert "--device: 'cuda' requested, but" in one_line_error(stderr)
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("seed", "message"),
    [("1e20", "expected a whole number, got '1e20'"), (str(10**20), "expected 0 … 2**63-1")],
)
def test_bad_seeds_are_refused(tmp_path, seed, message):
    code, stderr = simulate(tmp_path, EXAMPLE, "-o", "x.csv", "--noise", "--seed", seed)
    assert code == 2
    assert message in one_line_error(stderr)


def test_the_largest_seed_works(tmp_path):
    out = tmp_path / "x.csv"
    assert (
        main(["rbs", "simulate", str(EXAMPLE), "-o", str(out), "--noise", "--seed", str(2**63 - 1)])
        == 0
    )


def test_a_figure_format_matplotlib_cannot_write_is_refused_before_the_csv(tmp_path):
    code, stderr = simulate(tmp_path, EXAMPLE, "-o", "x.csv", "--plot", "x.xyz")
    assert code == 2
    assert "--plot: cannot write a figure as 'x.xyz'" in one_line_error(stderr)
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------ workflow configurations
def change(path: str, value):
    """Set the dotted key ``path`` of the tiny config to ``value``."""

    def apply(config):
        *parents, last = path.split(".")
        for key in parents:
            config = config.setdefault(key, {})
        config[last] = value

    return apply


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            change("preprocessing.first_channel", 1100),
            "preprocessing.first_channel: 1100 drops every channel of the technique's "
            "1100-channel spectra",
        ),
        (change("preprocessing.merge", 1001), "preprocessing.merge: 1001 channels per bin"),
        (
            change("rbs.experiment.detector.channels", 50),
            "preprocessing.first_channel: 100 (the technique's default) drops every channel",
        ),
        (
            change("model.kernels", [5]),
            "model (mdn, architecture A): model: filters, kernels and strides need the same",
        ),
        (change("example.experiment", "missing.yaml"), "example.experiment: missing.yaml: cannot"),
        (change("example.experiment", "README.md"), "example.experiment: README.md: malformed"),
        (
            change("data.sizes.validation", 0),
            "data.sizes.validation: the workflow needs at least one validation spectrum",
        ),
        (
            change("data.sizes.test", 0),
            "data.sizes.test: the workflow needs at least one test spectrum",
        ),
        (
            change("training.learning_rates", [1e6]),
            "training.learning_rates[0]: expected a value <= 1, got 1000000.0",
        ),
        (
            change("training.epochs", 1),
            "training.epochs: 1 epochs cannot be split evenly over the 2 stages",
        ),
        (change("training.epochs", 5), "expected a multiple of 2 (e.g. 4 or 6)"),
        (change("name", ".."), "name: expected text matching"),
        (change("name", "../elsewhere"), "name: expected text matching"),
        (change("name", ".hidden"), "name: expected text matching"),
        (
            change("fitting.refine_prior", "autofit"),
            "fitting.refine_prior: expected one of none, network, got 'autofit'",
        ),
        (
            lambda c: c.update(model={"kind": "cnn"}, fitting={"refine_prior": "network"}),
            "fitting.refine_prior: network needs the network's uncertainty; a single cnn",
        ),
        (
            lambda c: c.update(fitting={"posterior_steps": 100, "posterior_burn": 100}),
            "fitting.posterior_burn: expected 0 <= burn < posterior_steps (100), got 100",
        ),
        (
            change("fitting.posterior_walkers", 9),
            "fitting.posterior_walkers: expected 0 or an even number, got 9",
        ),
        (
            lambda c: c.update(fitting={"posterior_spectra": 5, "posterior_walkers": 6}),
            "fitting.posterior_walkers: expected 0 or an even number >= 2 x 4 parameters = 8, "
            "got 6",
        ),
    ],
)
def test_workflow_configs_are_checked_before_any_job(edit, message):
    config = tiny_config()
    edit(config)
    with pytest.raises(ConfigError) as info:
        workflow_plan(config)
    assert message in str(info.value), str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(
    ("key", "value"),
    [("data.device", "cuda"), ("fitting.device", "cuda"), ("training.accelerator", "gpu")],
)
def test_cuda_asked_for_where_there_is_none_is_refused(key, value):
    config = tiny_config()
    change(key, value)(config)
    workflow_plan(config)  # a cluster's nodes may have it: planning alone does not check
    with pytest.raises(ConfigError, match=f"{key}: '{value}' requested, but"):
        workflow_plan(config, check_devices=True)


def test_a_reference_posterior_of_a_classification_is_refused():
    import yaml

    config = yaml.safe_load((REPO / "tests/data/tiny_eels.yaml").read_text())
    config.setdefault("fitting", {})["posterior_spectra"] = 3
    with pytest.raises(ConfigError, match="posterior_spectra: a reference posterior needs a regr"):
        workflow_plan(config)
