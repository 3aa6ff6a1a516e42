"""The Snakemake workflow: lint, dry runs, the whole DAG on a tiny config, resuming, and
configuration errors that stop it before any job runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "data" / "tiny.yaml"

pytest.importorskip("snakemake")


def snakemake(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    return run_snakemake(*args, cwd=cwd, path=path)


def workdir(tmp_path: Path) -> Path:
    # the workflow reads config/ and examples/ relative to its working directory
    for name in ("config", "examples"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(TINY, tmp_path / "tiny.yaml")
    return tmp_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_lint_is_clean():
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "configfile",
    [
        "config/config.yaml",
        "config/paper/rbs_A.yaml",
        "config/paper/rbs_B.yaml",
        "config/paper/rbs_C.yaml",
        "config/paper/xrd_CNN1.yaml",
        "config/paper/xrd_CNN2.yaml",
        "config/paper/xrd_CNN3.yaml",
    ],
)
def test_dry_run_lists_the_data_dag(tmp_path, configfile):
    r = snakemake("-n", "--configfile", configfile, cwd=workdir(tmp_path))
    assert r.returncode == 0, r.stderr
    shards = yaml.safe_load((REPO / configfile).read_text())["data"]["shards"]
    out = r.stdout + r.stderr
    for rule in ("sample_parameters", "merge_shards", "split_data", "fit_preprocessing"):
        assert f"{rule}  " in out or f"{rule} " in out
    assert f"simulate_shard{' ' * 10}" in out or "simulate_shard" in out
    line = next(x for x in out.splitlines() if x.startswith("simulate_shard"))
    assert int(line.split()[-1]) == shards
    line = next(x for x in out.splitlines() if x.startswith("apply_preprocessing"))
    assert int(line.split()[-1]) == 3


@pytest.mark.parametrize(
    "overrides, networks",
    [
        (["config/paper/mdn10k_resampled.yaml"], 1),
        (
            [
                "config/paper/mdn10k_resampled.yaml",
                "config/paper/epochs150.yaml",
                "config/paper/ema.yaml",
                "config/paper/cpu_fits.yaml",
            ],
            1,
        ),
        (["config/paper/mdn10k_resampled.yaml", "config/paper/ensemble2.yaml"], 2),
    ],
)
def test_dry_run_with_the_10k_override(tmp_path, overrides, networks):
    r = snakemake(
        "-n", "--configfile", "config/paper/rbs_A.yaml", *overrides, cwd=workdir(tmp_path)
    )
    assert r.returncode == 0, r.stderr
    line = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("train_network"))
    assert int(line.split()[-1]) == networks  # only the 10k model(s)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A working directory where the tiny workflow ran to the end (shared by the tests that
    read its results or dry-run changes against it; they must not modify it)."""
    wd = workdir(tmp_path_factory.mktemp("tiny_run"))
    r = snakemake("--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    return wd


@pytest.mark.slow
def test_tiny_workflow_runs_end_to_end(tiny_run):
    wd = tiny_run
    from specinv.data import SpectrumTransform, read_dataset

    processed = {
        s: read_dataset(wd / f"results/tiny/processed/{s}.nc")
        for s in ("train", "validation", "test")
    }
    assert [processed[s].sizes["sample"] for s in processed] == [60, 20, 20]
    transform = SpectrumTransform.load(wd / "results/tiny/preprocessing/transform.json")
    x = processed["train"]["x"].values
    assert x.shape[1] == len(transform.kept_bins) and np.isfinite(x).all()
    assert np.allclose(x.mean(axis=0), 0, atol=1e-4)  # standard-scaled on train
    assert processed["train"]["y"].values.min() == 0.0
    raw = read_dataset(wd / "results/tiny/data/test.nc")
    assert raw["counts"].dtype == np.int32  # raw noisy counts kept for χ²
    log = (wd / "logs/tiny/simulate/shard-0.log").read_text()
    assert "spectra" in log and "shard 1/3" in log  # progress in the logs
    train_log = (wd / "logs/tiny/train/n60-member0.log").read_text()
    assert "best validation loss" in train_log and "Tip:" not in train_log  # no adverts
    assert "GPU available" in train_log  # Lightning's own lines go to the job's log too
    assert (wd / "results/example/spectrum.png").stat().st_size > 10_000
    # predictions, fits, tables and figures of the evaluation
    import pandas as pd

    res = wd / "results/tiny"
    chi2 = pd.read_csv(res / "tables/table2-4_chi2_profile.csv", index_col=0)
    assert list(chi2.index[:2]) == ["MDN30", "MDN60"]
    assert {"Autofit", "MDN + Autofit", "MDN + gradient refinement"} <= set(chi2.index)
    ideal = chi2.loc[chi2.index.str.startswith("ideal")].iloc[0]
    dof = int(chi2.index[-1].split("=")[1].rstrip(")"))
    assert ideal["mean"] == dof and abs(ideal["std"] - (2 * dof) ** 0.5) < 1e-3
    methods = pd.read_csv(res / "tables/table6_methods.csv", index_col=0)
    assert len(methods) == 4 and (methods["spectra"] == 8).all()
    autofit = read_dataset(res / "fits/autofit.nc")
    assert autofit.sizes["sample"] == 8 and (autofit["n_simulations"] <= 20 * 4).all()
    refined = read_dataset(res / "fits/mdn_refine.nc")
    assert (refined["estimate"] >= 50).all() and (refined["estimate"] <= 5000).all()
    assert (refined["chi2"] <= refined["chi2_start"]).all()
    runtimes = pd.read_csv(res / "tables/table1_runtimes.csv", index_col=0)
    assert "simulation" in runtimes.index and (runtimes["seconds"] > 0).all()
    coverage = pd.read_csv(res / "tables/table5_coverage.csv", index_col=0)
    assert coverage["ACS"].between(-1, 1).all()
    info = pd.read_csv(res / "tables/information_limit.csv", index_col=0)
    assert list(info.index) == list(coverage.index)
    assert (info["CRLB_relative_std"] > 0).all() and info["undetermined"].between(0, 1).all()
    assert {"MRE MDN60", "MRE MDN60 + gradient refinement"} <= set(info.columns)
    assert read_dataset(res / "fits/information_limit.nc").sizes["sample"] == 8
    targets = pd.read_csv(res / "tables/targets.csv", index_col=0)
    accepted = targets.loc[["goodness-of-fit acceptance"]].set_index("subject")
    assert list(accepted.index) == [
        "MDN60",
        "MDN60 + Autofit",
        "MDN60 + gradient refinement",
    ]
    assert len(targets.loc[["coverage 1sigma"]]) == len(coverage)
    # every parameter either has its MRE targets or says why it has none
    rows = targets.reset_index()
    rated = {s.split(": ")[0] for s in rows.loc[rows.target == "MRE / efficient MRE", "subject"]}
    skipped = set(rows.loc[rows.target.str.startswith("not determined"), "subject"])
    assert rated | skipped == set(coverage.index) and not rated & skipped
    for name in (
        "fig4-7_mre_vs_training_size",
        "fig8-10_prediction_ratio",
        "chi2_distributions",
        "example_fits",
        "accuracy_vs_training_size",
        "predicted_vs_true",
    ):
        assert (res / f"figures/{name}.png").stat().st_size > 10_000
        assert (res / f"figures/{name}.pdf").exists()
    assert not list(res.glob("figures/profile_examples.*"))  # RBS has no depth profiles
    # the HTML report holds every figure and table
    r = snakemake("--configfile", "tiny.yaml", "--report", str(wd.parent / "report.html"), cwd=wd)
    assert r.returncode == 0, r.stderr
    html = (wd.parent / "report.html").read_text()
    for name in (
        "fig4-7_mre_vs_training_size.png",
        "example_fits.png",
        "accuracy_vs_training_size.png",
        "predicted_vs_true.png",
        "table1_runtimes.html",
        "table2-4_chi2_profile.html",
        "table6_methods.html",
        "information_limit.html",
    ):
        assert name in html, name


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> number of jobs from the job-stats table of ``snakemake -n`` (without
    ``all``); empty when there is nothing to be done."""
    jobs, inside = {}, False
    for line in output.splitlines():
        if line.startswith("job ") and "count" in line:
            inside = True
            continue
        if inside:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "all":
                jobs[parts[0]] = int(parts[1])
    return jobs


#: the tiny run's jobs downstream of the trained networks
_NETWORKS = {
    "train_network": 2,
    "predict_network": 2,
    "evaluate_network": 2,
    "fit_nelder_mead": 2,
    "merge_fits": 1,
    "fit_refine": 1,
    "tables": 1,
    "figures": 1,
    "runtime_table": 1,
}
_DATA = {"sample_parameters": 1, "simulate_shard": 3, "merge_shards": 1, "split_data": 1}
_PREPROCESSING = {
    "fit_preprocessing": 1,
    "apply_preprocessing": 3,
    **_NETWORKS,
    "fit_nelder_mead": 4,
    "merge_fits": 2,
    "information_limit": 1,
}


def _set(path: str, value):
    def change(config):
        *parents, key = path.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value

    return change


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a changed key reruns exactly the jobs that read it, and what depends on their output
        (_set("rbs.experiment.beam.energy_keV", 3000), {**_DATA, **_PREPROCESSING}),
        (_set("data.seed", 7), {**_DATA, **_PREPROCESSING}),
        (_set("preprocessing.sigmas", 4.0), _PREPROCESSING),
        (_set("model.gru_hidden", 12), _NETWORKS),
        (_set("training.epochs", 4), _NETWORKS),
        (
            _set("fitting.autofit_evaluations_per_parameter", 25),
            {"fit_nelder_mead": 2, "merge_fits": 1, "tables": 1, "figures": 1, "runtime_table": 1},
        ),
        (
            _set("fitting.refine_iterations", 4),
            {"fit_refine": 1, "tables": 1, "figures": 1, "runtime_table": 1},
        ),
        (
            _set("fitting.refine_from", "ml_autofit"),
            {"fit_refine": 1, "tables": 1, "figures": 1, "runtime_table": 1},
        ),
        (
            _set("fitting.refine_prior", "network"),
            {"fit_refine": 1, "tables": 1, "figures": 1, "runtime_table": 1},
        ),
        (
            _set("fitting.refine_statistic", "deviance"),
            {"fit_refine": 1, "tables": 1, "figures": 1, "runtime_table": 1},
        ),
        (
            _set("fitting.posterior_spectra", 3),
            {"reference_posterior": 1, "tables": 1, "runtime_table": 1},
        ),
        (_set("evaluation.ratio_samples", 10), {"figures": 1}),
        (_set("evaluation.alpha", 0.1), {"tables": 1, "figures": 1}),
        (_set("evaluation.paper_runtimes_h", {"simulation": 0.5}), {"runtime_table": 1}),
        (_set("example.experiment", "examples/other.yaml"), {"simulate_example": 1}),
        # settings that change no result rerun nothing
        (_set("data.batch_size", 7), {}),
        (_set("data.threads", 2), {}),
        (_set("training.progress_bar", True), {}),
        (_set("fitting.batch_size", 100), {}),
        (_set("evaluation.threshold", 0.7), {}),  # read by multi-label evaluations only
        # a default written out is the same configuration
        (_set("fitting.restart_every", 30), {}),
        (_set("fitting.refine_from", "network"), {}),
        (_set("fitting.refine_prior", "none"), {}),
        (_set("fitting.refine_statistic", None), {}),
        (_set("preprocessing.merge", 4), {}),
    ],
)
def test_a_changed_key_reruns_exactly_what_reads_it(tiny_run, tmp_path, change, expected):
    config = yaml.safe_load(TINY.read_text())
    change(config)
    (tiny_run.parent / "changed.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(REPO / "examples" / "rbs_W_D_2layers.yaml", tiny_run / "examples/other.yaml")
    r = snakemake("-n", "--configfile", str(tiny_run.parent / "changed.yaml"), cwd=tiny_run)
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r.stdout + r.stderr) == expected, r.stdout[-3000:]


@pytest.mark.slow
def test_a_refinement_with_the_network_prior_minimises_chi2_plus_the_prior(tmp_path, tiny_run):
    """fitting.refine_prior: network reruns the refinement alone, and what it minimises is
    χ² plus the MDN's Gaussian term Σ ((mean − y) / std)² (the maximum a posteriori
    solution itself is checked against the closed form in test_fit_prior.py)."""
    import pandas as pd

    from specinv.data import read_dataset

    wd = tmp_path / "prior"
    shutil.copytree(tiny_run, wd, symlinks=True)
    config = yaml.safe_load(TINY.read_text())
    config.setdefault("fitting", {})["refine_prior"] = "network"
    (wd / "prior.yaml").write_text(yaml.safe_dump(config))
    r = snakemake("--configfile", "prior.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr[-3000:]
    res = wd / "results/tiny"
    plain = read_dataset(tiny_run / "results/tiny/fits/mdn_refine.nc")
    prior = read_dataset(res / "fits/mdn_refine.nc")
    network = read_dataset(res / "predictions/n60/test.nc").sel(sample=prior["sample"])
    assert prior.attrs["refine_prior"] == "network" and plain.attrs["refine_prior"] == "none"
    z = (prior["estimate"].values - network["mean"].values) / network["std"].values
    np.testing.assert_allclose(prior["objective"], prior["chi2"] + (z**2).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(plain["objective"], plain["chi2"], rtol=1e-12)
    assert (prior["objective"] <= prior["objective_start"] + 1e-9).all()
    assert not np.allclose(prior["estimate"], plain["estimate"])
    methods = pd.read_csv(res / "tables/table6_methods.csv", index_col=0)
    assert "MDN60 + gradient refinement (network prior)" in methods.index


@pytest.mark.slow
def test_the_reference_posterior_runs_in_the_workflow(tmp_path, tiny_run):
    """fitting.posterior_spectra adds the MCMC job and its table; nothing else reruns.
    The walkers start at the refinement's estimates, the draws stay in the prior box, and
    every method that fitted the spectra is compared with the posterior (which is checked
    against analytic posteriors in test_posterior.py)."""
    import pandas as pd

    from specinv.data import read_dataset

    wd = tmp_path / "posterior"
    shutil.copytree(tiny_run, wd, symlinks=True)
    config = yaml.safe_load(TINY.read_text())
    config.setdefault("fitting", {}).update(
        posterior_spectra=4, posterior_steps=40, posterior_burn=10, posterior_thin=2
    )
    (wd / "posterior.yaml").write_text(yaml.safe_dump(config))
    r = snakemake("--configfile", "posterior.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr[-3000:]
    res = wd / "results/tiny"
    posterior = read_dataset(res / "fits/reference_posterior.nc")
    refined = read_dataset(res / "fits/mdn_refine.nc")
    np.testing.assert_array_equal(posterior["sample"], refined["sample"][:4])
    np.testing.assert_allclose(posterior["start"], refined["estimate"][:4].clip(50, 5000))
    assert posterior.attrs["walkers"] == 10  # 2 x 4 parameters + 2
    assert posterior.sizes["draw"] == 10 * len(range(11, 40, 2))
    draws = posterior["draws"].values
    assert (draws >= 50 * (1 - 1e-6)).all() and (draws <= 5000 * (1 + 1e-6)).all()
    assert ((posterior["acceptance"] > 0.05) & (posterior["acceptance"] <= 1)).all()
    # the initial walkers, then half the ensemble twice per step (none outside the box)
    assert 0 < posterior["n_simulations"].values[0] <= 10 + 40 * 10
    table = pd.read_csv(res / "tables/reference_posterior.csv", index_col=0)
    assert {
        "efficient_MRE",
        "MRE posterior mean",
        "MRE MDN60",
        "MRE MDN60 + gradient refinement",
        "coverage 1σ MDN60",
        "MDN60 std / posterior std",
        "rank KS p-value",
    } <= set(table.columns)
    runtimes = pd.read_csv(res / "tables/table1_runtimes.csv", index_col=0)
    assert "reference posterior (MCMC)" in runtimes.index


def _reordered(value):
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    return value


@pytest.mark.slow
def test_the_same_config_with_keys_reordered_reruns_nothing(tiny_run):
    config = _reordered(yaml.safe_load(TINY.read_text()))
    assert list(config) != list(yaml.safe_load(TINY.read_text()))
    (tiny_run.parent / "reordered.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    r = snakemake("-n", "--configfile", str(tiny_run.parent / "reordered.yaml"), cwd=tiny_run)
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r.stdout + r.stderr) == {}
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.slow
def test_rerun_resumes_without_redoing_finished_shards(tmp_path, tiny_run):
    wd = workdir(tmp_path / "resumed")
    shards = [wd / f"results/tiny/data/shards/shard-{s}-of-3.nc" for s in range(3)]
    # first run stops after two shards (as if interrupted during the simulation)
    targets = [str(p.relative_to(wd)) for p in shards[:2]]
    r = snakemake(*targets, "--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    assert not shards[2].exists()
    before = [p.stat().st_mtime_ns for p in shards[:2]]
    data = [f"results/tiny/processed/{s}.nc" for s in ("train", "validation", "test")]
    r = snakemake(*data, "--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    assert [p.stat().st_mtime_ns for p in shards[:2]] == before  # not redone
    stats = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("simulate_shard"))
    assert int(stats.split()[-1]) == 1  # only the missing one
    # and the result equals an uninterrupted run
    for f in ("data/spectra.nc", "processed/test.nc"):
        assert md5(wd / "results/tiny" / f) == md5(tiny_run / "results/tiny" / f)


@pytest.mark.slow
def test_a_truncated_shard_is_removed_and_simulated_again(tmp_path, tiny_run):
    wd = workdir(tmp_path)
    shards = [wd / f"results/tiny/data/shards/shard-{s}-of-3.nc" for s in range(3)]
    r = snakemake(*(str(p.relative_to(wd)) for p in shards), "--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    shards[1].write_bytes(shards[1].read_bytes()[:2000])  # a crash or a full disk
    r = snakemake("results/tiny/data/spectra.nc", "--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode != 0
    log = (wd / "logs/tiny/merge_shards.log").read_text()
    assert f"{shards[1].relative_to(wd)}: not a readable dataset (truncated or damaged" in log
    assert "the file was removed: run the same command again" in log
    assert not shards[1].exists()
    r = snakemake("results/tiny/data/spectra.nc", "--configfile", "tiny.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    stats = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("simulate_shard"))
    assert int(stats.split()[-1]) == 1  # only the removed one
    name = "results/tiny/data/spectra.nc"
    assert md5(wd / name) == md5(tiny_run / name)


def test_the_workflow_needs_no_environment_bin_folder_on_path(tmp_path):
    """``/path/to/venv/bin/python -m snakemake`` without activating the environment: the
    jobs call the library through the same interpreter, not a `specinv` on PATH."""
    wd = workdir(tmp_path)
    path = os.pathsep.join(
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and not (Path(d) / "specinv").exists() and not (Path(d) / "snakemake").exists()
    )
    assert shutil.which("specinv", path=path) is None
    r = snakemake("results/example/spectrum.csv", "--configfile", "tiny.yaml", cwd=wd, path=path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (wd / "results/example/spectrum.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["data"].pop("sizes"), "sizes"),  # missing
        (lambda c: c["data"]["sizes"].update({"train": "many"}), "many"),  # type
        (lambda c: c["rbs"]["sample"]["layers"][0].update({"Qx": None}), "unknown element 'Qx'"),
        (
            lambda c: c.update({"preprocessing": {"savgol": {"window": 4}}}),
            "preprocessing.savgol.window",
        ),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, change, message):
    """The workflow stops before any job (every other bad value: tests/test_config.py)."""
    wd = workdir(tmp_path)
    config = yaml.safe_load(TINY.read_text())
    change(config)
    # replace the default config itself (as a user editing config/config.yaml would)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    r = snakemake(cwd=wd)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr[-2000:]
    assert not (wd / "results").exists()


def _spectrum_csv(path: Path, counts, offset=0.0, gain=2.637) -> Path:
    channel = np.arange(len(counts))
    rows = [f"{c},{offset + gain * c:.6f},{n}" for c, n in zip(channel, counts, strict=True)]
    path.write_text("channel,energy_keV,counts\n" + "\n".join(rows) + "\n")
    return path


def test_analyze_measured_files_with_the_trained_run(tiny_run, tmp_path):
    """Issue 18: ``specinv rbs analyze`` on the run's own test spectra (as files) gives the
    workflow's network estimates and χ²; broken files are reported one line each while the
    others are analysed; an earlier analysis is not replaced without --overwrite."""
    import pandas as pd
    import xarray as xr

    res = tiny_run / "results/tiny"
    test = xr.open_dataset(res / "data/test.nc", engine="h5netcdf")
    counts = test["counts"].values
    folder = tmp_path / "spectra"
    folder.mkdir()
    for i, c in enumerate(counts):
        _spectrum_csv(folder / f"s{i:02d}.csv", c)
    # the first spectrum again on a calibration 1 % coarser (re-binned onto the run's)
    coarse = np.arange(counts.shape[1]) * 2.637 * 1.01
    edges = 2.637 * np.arange(counts.shape[1] + 1)
    rebinned = np.diff(
        np.interp(
            np.append(coarse, coarse[-1] + 2.637 * 1.01),
            edges,
            np.concatenate([[0], np.cumsum(counts[0])]),
        )
    )
    _spectrum_csv(folder / "t_coarse.csv", np.round(rebinned).astype(int), gain=2.637 * 1.01)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "nan.csv").write_text("channel,energy_keV,counts\n0,0,1\n1,2.637,nan\n")
    (bad / "negative.txt").write_text("0 5\n1 -3\n2 4\n")
    (bad / "truncated.xml").write_text('<?xml version="1.0"?><idf xmlns="http://idf.sch')
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 9))
    (bad / "bomb.xml").write_text(
        f'<?xml version="1.0"?><!DOCTYPE idf [<!ENTITY l0 "x">{lol}]><idf>&l8;</idf>'
    )
    (bad / "wrong_ion.xml").write_text(
        '<?xml version="1.0"?><idf xmlns="http://idf.schemas.itn.pt"><sample><spectra>'
        "<spectrum><beam><beamparticle>1H</beamparticle></beam><calibrations>"
        "<energycalibrations><energycalibration><calibrationmode>energy</calibrationmode>"
        '<calibrationparameters><calibrationparameter units="keV">0</calibrationparameter>'
        '<calibrationparameter units="keV/channel">2.637</calibrationparameter>'
        "</calibrationparameters></energycalibration></energycalibrations></calibrations>"
        "<data><simpledata><x>"
        + " ".join(map(str, range(1100)))
        + "</x><y>"
        + " ".join(map(str, counts[0]))
        + "</y></simpledata></data></spectrum></spectra>"
        "</sample></idf>"
    )
    (bad / "no_calibration.txt").write_text("\n".join(f"{i} {n}" for i, n in enumerate(counts[0])))
    _spectrum_csv(bad / "short.csv", counts[0][:512])
    (bad / "empty.txt").write_text("")
    (bad / "garbage.dat").write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "analysis"
    cli = [
        sys.executable,
        "-m",
        "specinv.cli",
        "rbs",
        "analyze",
        str(res),
        str(folder),
        str(bad),
        "-o",
        str(out),
        "--figures",
        "2",
        "--size",
        "60",
    ]
    r = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out / "analysis.csv")
    failed = table[table.status == "failed"].set_index(
        table.file[table.status == "failed"].map(lambda p: Path(p).name)
    )
    expected_reasons = {
        "nan.csv": "nan",
        "negative.txt": "count -3",
        "truncated.xml": "XML",
        "bomb.xml": "entit",
        "wrong_ion.xml": "the model was trained for 3He",
        "no_calibration.txt": "no energy calibration",
        "short.csv": "the model needs channels",
        "empty.txt": "empty",
        "garbage.dat": "",
    }
    assert set(failed.index) == set(expected_reasons)
    for name, fragment in expected_reasons.items():
        reason = failed.loc[name, "reason"]
        assert reason.startswith(str(bad / name)) and "\n" not in reason
        assert fragment.lower() in reason.lower(), reason
        assert f"skipped: {reason}" in r.stderr
    done = table[table.status == "analysed"].reset_index(drop=True)
    assert len(done) == len(counts) + 1
    # the workflow's own network estimates and χ² of the same spectra
    predictions = xr.open_dataset(res / "predictions/n60/test.nc", engine="h5netcdf")
    fits = xr.open_dataset(res / "fits/mdn_n60.nc", engine="h5netcdf")
    names = [str(p) for p in predictions["param"].values]
    mine = done[[f"estimate:{n}" for n in names]].values[: len(counts)]
    np.testing.assert_allclose(mine, predictions["mean"].values, rtol=1e-9)
    np.testing.assert_allclose(done["chi2"].values[: len(counts)], fits["chi2"].values, rtol=1e-9)
    assert done["dof"].iloc[0] == fits.attrs["dof"]
    # the re-binned copy of spectrum 0 gets nearly its estimate
    coarse_row = done[done.file.str.endswith("t_coarse.csv")]
    assert len(coarse_row) == 1
    np.testing.assert_allclose(
        coarse_row[[f"estimate:{n}" for n in names]].values[0], mine[0], rtol=0.1
    )
    assert (out / "summary.png").stat().st_size > 10_000
    assert len(list((out / "figures").glob("*.png"))) == 2
    with xr.open_dataset(out / "analysis.nc", engine="h5netcdf") as ds:
        assert ds.sizes["spectrum"] == len(counts) + 1
    # an earlier analysis is kept unless --overwrite
    before = md5(out / "analysis.csv")
    r = subprocess.run(cli, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "already holds analysis.csv" in r.stderr
    assert md5(out / "analysis.csv") == before


def test_measured_section_analyses_a_folder_and_reruns_only_that(tiny_run, tmp_path):
    """``measured`` in the configuration: one job analyses the files with the run's
    networks; nothing else reruns, and a changed file reruns the analysis."""
    import pandas as pd
    import xarray as xr

    wd = tmp_path / "run"
    shutil.copytree(tiny_run, wd, symlinks=True)
    test = xr.open_dataset(wd / "results/tiny/data/test.nc", engine="h5netcdf")
    (wd / "map").mkdir()
    for i, c in enumerate(test["counts"].values[:5]):
        _spectrum_csv(wd / "map" / f"p{i}.csv", c)
    (wd / "map" / "broken.csv").write_text("channel,energy_keV,counts\n0,0,2\n1,2.637,-1\n")
    config = yaml.safe_load((wd / "tiny.yaml").read_text())
    config["measured"] = {"spectra": "map/*.csv", "refine": True, "figures": 1}
    (wd / "measured.yaml").write_text(yaml.safe_dump(config))
    r = snakemake("--configfile", "measured.yaml", "-n", cwd=wd)
    assert r.returncode == 0, r.stderr
    jobs = [x.split()[0] for x in r.stdout.splitlines() if x.split()[-1:] == ["1"]]
    assert set(jobs) - {"all", "total"} == {"analyze_measured"}, r.stdout
    r = snakemake("--configfile", "measured.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(wd / "results/tiny/measured/analysis.csv")
    assert (table.status == "analysed").sum() == 5
    assert table[table.status == "failed"].reason.str.contains("count -1").all()
    assert "refined_accepted" in table
    # a spectrum measured again (Snakemake 9 reruns on changed contents, not on a touch)
    _spectrum_csv(wd / "map" / "p0.csv", test["counts"].values[6])
    r = snakemake("--configfile", "measured.yaml", "-n", cwd=wd)
    assert "analyze_measured" in r.stdout and "train_network" not in r.stdout


def test_measured_pattern_without_files_fails_before_any_job(tmp_path):
    wd = workdir(tmp_path)
    config = yaml.safe_load((wd / "tiny.yaml").read_text())
    config["measured"] = {"spectra": "nothing/*.xml"}
    (wd / "m.yaml").write_text(yaml.safe_dump(config))
    r = snakemake("--configfile", "m.yaml", "-n", cwd=wd)
    assert r.returncode != 0
    assert "measured.spectra: 'nothing/*.xml' matches no file" in r.stdout + r.stderr
    assert not (wd / "results").exists()


def test_analyze_benchmark_runs_on_the_tiny_run(tiny_run):
    """benchmarks/rbs_analyze.py on a few spectra: the files' analysis and the in-memory
    path give the same estimates."""
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "rbs_analyze.py"),
            str(tiny_run / "results/tiny"),
            "--spectra",
            "6",
        ],
        capture_output=True,
        text=True,
        cwd=tiny_run,
    )
    assert r.returncode == 0, r.stderr
    assert "6 of 6 spectra analysed" in r.stdout
    assert "estimates identical to the in-memory path: True" in r.stdout


def _slurm_ready() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    tools = ("slurmctld", "slurmd", "munged", "mungekey", "squeue", "scontrol")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        return (
            f"no SLURM here ({', '.join(missing)} missing; apt-get install slurmctld slurmd "
            "slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "the SLURM daemons need root"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed"
    if Path("/etc/slurm/slurm.conf").exists() and not Path("/etc/slurm/slurm.conf").is_symlink():
        return "this machine has a real SLURM configuration; the test cluster would replace it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A throw-away single-node SLURM cluster (profiles/slurm/local_cluster.py) with
    partitions cpu and gpu; skipped where it cannot run, unless SPECINV_REQUIRE_SLURM=1."""
    why = _slurm_ready()
    if why:
        if os.environ.get("SPECINV_REQUIRE_SLURM") == "1":
            pytest.fail(f"SPECINV_REQUIRE_SLURM=1 but {why}")
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slurm")
    script = [sys.executable, str(REPO / "profiles/slurm/local_cluster.py")]
    r = subprocess.run([*script, "start", "--dir", str(root)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    yield root
    subprocess.run([*script, "stop", "--dir", str(root)], capture_output=True, text=True)


def _slurm_jobs() -> dict[str, dict[str, str]]:
    """SLURM job id -> partition, comment (rule_<rule>_wildcards_...), state and TRES
    request of every job the controller knows (finished ones for MinJobAge, 300 s)."""
    fields = ("partition", "comment", "state", "tres")
    r = subprocess.run(
        ["squeue", "-h", "-t", "all", "-O", "JobID:|,Partition:|,Comment:|,State:|,tres-per-job:"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    jobs = {}
    for line in r.stdout.splitlines():
        job, *values = (v.strip() for v in line.split("|"))
        jobs[job] = dict(zip(fields, values, strict=True))
    return jobs


def _run_watching_slurm(cmd, cwd, env, seen: dict, on_poll=None) -> tuple[int, str]:
    """Run the workflow, recording every SLURM job into ``seen`` while it runs (finished
    jobs drop out of squeue after MinJobAge); ``on_poll(jobs)`` may act on them."""
    import threading
    import time

    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out_file = []
    reader = threading.Thread(target=lambda: out_file.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 1500
    while proc.poll() is None and time.monotonic() < deadline:
        jobs = _slurm_jobs()
        seen.update(jobs)
        if on_poll is not None:
            on_poll(jobs)
        time.sleep(0.5)
    proc.wait(timeout=60)
    reader.join(timeout=60)
    seen.update(_slurm_jobs())
    return proc.returncode, "".join(out_file)


@pytest.mark.slow
def test_the_slurm_profile_runs_the_workflow_on_a_slurm_cluster(slurm_cluster, tmp_path, tiny_run):
    """The tiny workflow through profiles/slurm on a real (single-node) SLURM, from the
    parameters to the refined fits (every kind of job: data, preprocessing, training,
    prediction, a fit; the tables and figures are CPU jobs like these, and the local tests
    cover them): every job is a SLURM job, the GPU rule (training) in the gpu partition with
    a GPU, every other rule in the cpu partition; a training job cancelled with scancel
    mid-run is all that the rerun redoes; the data equal the local run's byte for byte."""
    from conftest import snakemake_command

    wd = workdir(tmp_path / "slurm")
    shutil.copytree(REPO / "profiles", wd / "profiles")  # partitions.yaml, relative to wd
    args = (
        "results/tiny/fits/mdn_refine.nc",
        "--workflow-profile",
        str(REPO / "profiles/slurm"),
        "--configfile",
        "tiny.yaml",
        # the plugin checks after this many seconds, and again 10 s later than the last
        # wait each time no job has finished (1, 12, 33, ... s): a tiny job, ~10 s through
        # sbatch, srun and the job's own Snakemake, is seen after 12 s
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "2",
    )
    before = set(_slurm_jobs())
    cmd, env = snakemake_command(*args, cwd=wd)
    seen: dict[str, dict[str, str]] = {}
    cancelled: list[str] = []

    def cancel_a_running_training(jobs):
        for job, info in jobs.items():
            if not cancelled and info["comment"].startswith("rule_train_network"):
                if info["state"] == "RUNNING":
                    subprocess.run(["scancel", job], check=True)
                    cancelled.append(job)

    code, out = _run_watching_slurm(cmd, wd, env, seen, cancel_a_running_training)
    assert cancelled, out[-3000:]
    assert code != 0  # the cancelled job failed the run
    code, out = _run_watching_slurm(cmd, wd, env, seen)
    assert code == 0, out[-3000:]
    # the rerun redid the cancelled training and what had not run, no data job
    redone = planned_jobs(out)
    assert redone.get("train_network") == 1, redone
    assert not {"sample_parameters", "simulate_shard", "merge_shards", "split_data"} & set(redone)
    # every job ran in SLURM, in its partition; the GPU job asked for a GPU, no other did
    jobs = {k: v for k, v in seen.items() if k not in before}
    rules = {v["comment"].split("_wildcards")[0].removeprefix("rule_") for v in jobs.values()}
    assert {"simulate_shard", "apply_preprocessing", "train_network", "fit_refine"} <= rules
    for job, info in jobs.items():
        gpu = info["comment"].startswith("rule_train_network")
        assert info["partition"] == ("gpu" if gpu else "cpu"), (job, info)
        assert ("gpu" in info["tres"]) == gpu, (job, info)
        assert info["state"] == ("CANCELLED" if job in cancelled else "COMPLETED"), (job, info)
    assert list((wd / ".snakemake/slurm_logs/rule_train_network").rglob("*.log"))
    # the same data as the local run's, byte for byte
    for name in ("data/spectra.nc", "data/test.nc", "processed/train.nc", "processed/test.nc"):
        assert md5(wd / "results/tiny" / name) == md5(tiny_run / "results/tiny" / name), name
    assert (wd / "results/tiny/fits/mdn_refine.nc").exists()
