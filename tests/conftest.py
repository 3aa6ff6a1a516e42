"""Shared fixtures: where the reference data lives, seeded torch, GPU skipping."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: techniques defined only in the tests, registered as plug-ins (entry points); the workflow
#: tests put this folder on the PYTHONPATH of their Snakemake runs
PLUGINS = REPO / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))


def shared_dir() -> Path | None:
    """The team's shared folder (reference spectra, real measured files): $SPECINV_SHARED, or
    a folder ``shared`` beside the checkout or beside one of its parents; None if absent."""
    if os.environ.get("SPECINV_SHARED"):
        return Path(os.environ["SPECINV_SHARED"])
    for parent in REPO.parents:
        if (parent / "shared" / "reference").is_dir():
            return parent / "shared"
    return None


def shared_subdir(name: str) -> Path:
    """shared/<name>; skips the calling test (fails with SPECINV_REQUIRE_SHARED=1) when it
    is not there, e.g. in a clone outside the team's workspace."""
    shared = shared_dir()
    if shared is None or not (shared / name).is_dir():
        message = f"shared/{name} not found: set SPECINV_SHARED to the shared folder"
        if os.environ.get("SPECINV_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return shared / name


def reference_dir() -> Path:
    """shared/reference (JaBS reference spectra), or the test is skipped."""
    return shared_subdir("reference")


def real_dir() -> Path:
    """shared/real (measured spectra from other projects), or the test is skipped."""
    return shared_subdir("real")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


TINY = REPO / "tests" / "data" / "tiny.yaml"


def tiny_config(**data) -> dict:
    """The tiny RBS configuration (tests/data/tiny.yaml), its ``data`` section updated."""
    import yaml

    config = yaml.safe_load(TINY.read_text())
    config["data"].update(data)
    return config


@pytest.fixture(scope="session")
def tiny_processed(tmp_path_factory) -> Path:
    """A tiny RBS dataset (240 training, 60 validation, 40 test spectra), preprocessed: a
    folder with ``{train,validation,test}.nc`` and ``transform.json``; made once per test
    session (tests must not modify it)."""
    from specinv.data import (
        SPLITS,
        SpectrumTransform,
        dataset_config,
        sample_parameters,
        simulate_shard,
        split_dataset,
        write_dataset,
    )
    from specinv.data.preprocess import processed_dataset

    root = tmp_path_factory.mktemp("tiny_processed")
    cfg = dataset_config(tiny_config(sizes={"train": 240, "validation": 60, "test": 40}, shards=1))
    merged = simulate_shard(cfg, sample_parameters(cfg), 0, progress=False)
    train = split_dataset(merged, "train")
    transform = SpectrumTransform.fit(
        train["counts"].values, train["params"].values, list(train["param"].values)
    )
    transform.save(root / "transform.json")
    for split in SPLITS:
        write_dataset(
            processed_dataset(split_dataset(merged, split), transform), root / f"{split}.nc"
        )
    return root


def snakemake_command(
    *args: str, cwd: Path, path: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of :func:`run_snakemake` (for a test that runs the
    workflow in the background, e.g. to kill it)."""
    env = {
        **os.environ,
        **({"PATH": path} if path is not None else {}),
        "PYTHONPATH": os.pathsep.join(
            [str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(cwd),
        "--cores",
        "2",
        *args,
    ]
    return cmd, env


def run_snakemake(*args: str, cwd: Path, path: str | None = None):
    """The workflow (this checkout's Snakefile) run in ``cwd`` on 2 cores, with the test
    plug-in techniques importable (and ``path`` as PATH if given); returns the completed
    process."""
    import subprocess

    cmd, env = snakemake_command(*args, cwd=cwd, path=path)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)


def assert_forward_mode_matches_central_differences(f, x0, relative_steps, tolerance):
    """The forward-mode Jacobian of ``f`` (a tensor [D] -> a tensor [C]) at ``x0`` equals
    central differences with steps ``relative_steps`` [D] × x0: per parameter, the largest
    deviation is below ``tolerance`` times the largest derivative (which must be > 0)."""
    jac = torch.autograd.functional.jacobian(f, x0, strategy="forward-mode", vectorize=True)
    for d, step in enumerate(relative_steps):
        h = step * float(x0[d])
        up, down = x0.clone(), x0.clone()
        up[d] += h
        down[d] -= h
        fd = (f(up) - f(down)) / (2 * h)
        scale = float(fd.abs().max())
        assert scale > 0, f"parameter {d}: no derivative"
        error = float((jac[:, d] - fd).abs().max()) / scale
        assert error < tolerance, f"parameter {d}: relative deviation {error:.2e}"
