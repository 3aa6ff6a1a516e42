"""Shared fixtures: where the reference data lives, seeded torch, GPU skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The team's shared folder (reference spectra, real files): $SPECINV_SHARED or ../shared."""
    return Path(os.environ.get("SPECINV_SHARED", REPO.parent / "shared"))


def reference_dir() -> Path:
    return shared_dir() / "reference"


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
