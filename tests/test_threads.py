"""Thread settings for shared machines (specinv.threads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from specinv.config import ConfigError
from specinv.threads import allocated_cpus, configure_threads, limit_spin_waiting


def test_a_short_spin_is_set_unless_the_user_chose_how_threads_wait():
    env: dict[str, str] = {}
    assert limit_spin_waiting(env) == "10000"
    assert env == {"GOMP_SPINCOUNT": "10000"}
    for mine in ({"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "5"}):
        env = dict(mine)
        assert limit_spin_waiting(env) is None
        assert env == mine


def test_the_job_allocation_sets_the_thread_count():
    assert allocated_cpus({"SLURM_CPUS_PER_TASK": "3"}) == 3
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if expected is not None:
        assert allocated_cpus({}) == expected


@pytest.mark.parametrize("value", ["0", "two", "-1", "2.5"])
def test_a_bad_slurm_cpu_count_is_named(value):
    with pytest.raises(
        ConfigError,
        match=f"SLURM_CPUS_PER_TASK: expected a positive integer, got '{re.escape(value)}'",
    ):
        allocated_cpus({"SLURM_CPUS_PER_TASK": value})


def test_the_command_names_a_bad_slurm_cpu_count(tmp_path):
    env = dict(os.environ, SLURM_CPUS_PER_TASK="two")
    r = subprocess.run(
        [sys.executable, "-m", "specinv", "rbs", "simulate", "x.yaml", "-o", "out.csv"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "SLURM_CPUS_PER_TASK: expected a positive integer, got 'two'" in r.stderr
    assert "Traceback" not in r.stderr


def test_configure_threads_sets_torch_threads():
    import torch

    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1
        assert torch.get_num_threads() == 1
        for bad in (0, 1.5, True):
            with pytest.raises(
                ConfigError, match=f"threads: expected a positive integer, got {bad}"
            ):
                configure_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_the_command_runs_with_a_short_openmp_spin_and_the_allocation(tmp_path):
    """The specinv command sets OpenMP's spin count before torch loads OpenMP (no
    warning), and its threads from the job's allocation."""
    example = Path(__file__).resolve().parents[1] / "examples" / "rbs_W_D_2layers.yaml"
    code = (
        "import os, sys\n"
        "from specinv.cli import main\n"
        f"assert main(['rbs', 'simulate', {str(example)!r}, '-o', 'out.csv']) == 0\n"
        "import torch\n"
        "print(os.environ.get('GOMP_SPINCOUNT'), torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["SLURM_CPUS_PER_TASK"] = "1"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["10000", "1"], r.stdout
    assert "torch was imported before" not in r.stderr
    assert (tmp_path / "out.csv").exists()
