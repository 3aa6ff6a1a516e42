"""Training jobs of the workflow on the tiny config: one killed (SIGKILL of the Snakemake
process group) during its first stage and run again resumes from its last checkpoint and
ends with the weights of an uninterrupted run; a diverging one fails with a one-line
error."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, TINY, run_snakemake, snakemake_command

pytest.importorskip("snakemake")

#: the folder of the network the jobs train (training size 60, the only member)
MODEL = "results/tiny/models/n60/member0"
TARGET = f"{MODEL}/model.ckpt"
LOG = "logs/tiny/train/n60-member0.log"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A working directory with the tiny dataset made and preprocessed, and ``long.yaml``:
    the tiny config with 200 epochs (stage 1 then lasts seconds, long enough to be killed
    in)."""
    wd = tmp_path_factory.mktemp("prepared")
    for name in ("config", "examples"):
        shutil.copytree(REPO / name, wd / name)
    config = yaml.safe_load(TINY.read_text())
    config["training"]["epochs"] = 200
    (wd / "long.yaml").write_text(yaml.safe_dump(config))
    data = [f"results/tiny/processed/{split}.nc" for split in ("train", "validation")]
    r = run_snakemake(*data, "--configfile", "long.yaml", cwd=wd)
    assert r.returncode == 0, r.stderr[-3000:]
    return wd


def copy_of(prepared: Path, to: Path) -> Path:
    """A copy of the prepared working directory (modification times and Snakemake's
    records kept: its data is not made again)."""
    shutil.copytree(prepared, to, symlinks=True)
    return to


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_a_killed_training_job_resumes_to_the_weights_of_an_uninterrupted_one(prepared, tmp_path):
    reference = copy_of(prepared, tmp_path / "uninterrupted")
    r = run_snakemake(TARGET, "--configfile", "long.yaml", cwd=reference)
    assert r.returncode == 0, r.stderr[-3000:]

    killed = copy_of(prepared, tmp_path / "killed")
    last = killed / MODEL / "stage1" / "checkpoints" / "last.ckpt"
    cmd, env = snakemake_command(TARGET, "--configfile", "long.yaml", cwd=killed)
    job = subprocess.Popen(
        cmd,
        cwd=killed,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: Snakemake and the training job
    )
    try:
        deadline = time.monotonic() + 300
        while not last.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert last.exists(), "the job ended (or timed out) before stage 1's first checkpoint"
    assert not (killed / MODEL / "stage1" / "done.json").exists(), "killed after stage 1"
    assert not (killed / TARGET).exists()
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]

    r = run_snakemake("--unlock", TARGET, "--configfile", "long.yaml", cwd=killed)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_snakemake(TARGET, "--configfile", "long.yaml", cwd=killed)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (killed / LOG).read_text()
    assert f"Restored all states from the checkpoint at {MODEL}/stage1/checkpoints/last.ckpt" in (
        log
    )
    got, expected = state_dict(killed / TARGET), state_dict(reference / TARGET)
    assert got.keys() == expected.keys()
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f"killed after epoch {killed_at} of stage 1: {differ} differ"
    for stage in ("stage1", "stage2"):
        metrics = f"{MODEL}/{stage}/metrics.csv"
        pd.testing.assert_frame_equal(
            pd.read_csv(killed / metrics), pd.read_csv(reference / metrics)
        )


@pytest.mark.slow
def test_a_diverging_training_job_fails_with_a_one_line_error(prepared, tmp_path):
    wd = copy_of(prepared, tmp_path / "diverging")
    config = yaml.safe_load((wd / "long.yaml").read_text())
    config["training"]["learning_rates"] = [1.0]
    (wd / "diverging.yaml").write_text(yaml.safe_dump(config))
    r = run_snakemake(TARGET, "--configfile", "diverging.yaml", cwd=wd)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.stderr[-3000:]
    assert "training diverged in stage 1 (learning rate 1), epoch " in errors[0]
    assert "training.learning_rates: expected lower rates, got [1.0]" in errors[0]
    log = (wd / LOG).read_text()
    assert errors[0].removeprefix("error: ") in log and "Traceback" not in log
    assert not (wd / TARGET).exists() and not (wd / MODEL / "summary.json").exists()
