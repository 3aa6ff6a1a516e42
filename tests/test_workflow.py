"""The Snakemake workflow: lint, dry run, and a real run of the default DAG in a temp dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("snakemake")


def snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(cwd), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def workdir(tmp_path: Path) -> Path:
    # the workflow reads config/ and examples/ relative to its working directory
    for name in ("config", "examples"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def test_lint_is_clean():
    r = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dry_run_lists_the_dag(tmp_path):
    r = snakemake("-n", cwd=workdir(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "simulate_example" in r.stdout + r.stderr


def test_default_workflow_runs(tmp_path):
    wd = workdir(tmp_path)
    r = snakemake(cwd=wd)
    assert r.returncode == 0, r.stderr
    data = np.loadtxt(wd / "results/example/spectrum.csv", delimiter=",", skiprows=1)
    assert data.shape == (1024, 3) and data[:, 2].max() > 1000
    assert (wd / "results/example/spectrum.png").stat().st_size > 10_000


def test_bad_config_fails_before_any_job(tmp_path):
    wd = workdir(tmp_path)
    (wd / "bad.yaml").write_text("technique: xps\nexample: {experiment: x.yaml}\n")
    r = snakemake("--configfile", str(wd / "bad.yaml"), cwd=wd)
    assert r.returncode != 0
    assert "technique" in r.stderr and "xps" in r.stderr
    assert not (wd / "results").exists()
