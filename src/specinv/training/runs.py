"""The trained networks a workflow run left behind, for spectra it has not seen.

A run's ``results/<name>`` folder holds ``models/n<size>/member<k>/model.ckpt`` (one network
or an ensemble per training-set size), the fitted preprocessing and the simulated datasets,
whose attributes describe the forward model.  :func:`load_network_run` finds them (with
errors that name what is missing); :func:`predict_spectra` runs the networks on new
spectra through the run's preprocessing.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..config.errors import ConfigError


@dataclass(frozen=True)
class NetworkRun:
    """A run's checkpoints (one network or an ensemble), preprocessing, test split and the
    forward model's description (``describe()`` of its technique)."""

    checkpoints: list[Path]
    transform_path: Path
    test_path: Path
    forward_model: dict
    size: int

    @property
    def parameter_names(self) -> list[str]:
        """The estimated parameters: as the forward model lists them, else (a technique
        whose description does not) the test split's ``param`` coordinate."""
        if "parameters" in self.forward_model:
            return list(self.forward_model["parameters"])
        with xr.open_dataset(self.test_path, engine="h5netcdf") as ds:
            return [str(p) for p in ds["param"].values]


def load_network_run(results: str | Path, technique: str, size: int | None = None) -> NetworkRun:
    """The networks of training-set size ``size`` (None: the largest trained) of the run
    of ``technique`` whose outputs are in ``results``.

    Raises:
        ConfigError: naming the missing file or size, what the folder holds, or a run of
            another technique.
    """
    results = Path(results)
    models = results / "models"
    sizes = sorted(
        int(p.name[1:]) for p in models.glob("n*") if p.name[1:].isdigit() and p.is_dir()
    )
    if not sizes:
        raise ConfigError(
            f"--network {results}: expected a workflow run's results folder with "
            "models/n<size>/member<k>/model.ckpt; found no trained network"
        )
    size = max(sizes) if size is None else size
    checkpoints = sorted((models / f"n{size}").glob("member*/model.ckpt"))
    if not checkpoints:
        raise ConfigError(
            f"--size {size}: no trained network of that size in {models} (found "
            f"{', '.join(map(str, sizes))})"
        )
    transform = results / "preprocessing" / "transform.json"
    test = results / "data" / "test.nc"
    for path in (transform, test):
        if not path.is_file():
            raise ConfigError(f"--network {results}: {path} is missing")
    with xr.open_dataset(test, engine="h5netcdf") as ds:
        forward_model = json.loads(ds.attrs["forward_model"])
    if forward_model.get("technique") != technique:
        raise ConfigError(
            f"--network {results}: expected a run of technique {technique}, got "
            f"{forward_model.get('technique')!r}"
        )
    return NetworkRun(checkpoints, transform, test, forward_model, size)


def predict_spectra(run: NetworkRun, counts: np.ndarray, labels: list[str] | None = None):
    """The run's prediction dataset for spectra ``counts`` [N, C] on the run's channels:
    estimates (regression; the truth NaN) or probabilities of ``labels`` (multi-label; the
    truth 0).  Lightning's start-up messages are kept out of a command's output."""
    from ..data import SpectrumTransform
    from . import predict

    transform = SpectrumTransform.load(run.transform_path)
    x = transform.features(np.atleast_2d(counts))
    names = run.parameter_names
    n = x.shape[0]
    variables = {
        "x": (("sample", "feature"), x),
        "params": (("sample", "param"), np.full((n, len(names)), np.nan)),
    }
    coords = {"sample": np.arange(n), "param": names}
    if labels is not None:
        variables["labels"] = (("sample", "label"), np.zeros((n, len(labels)), np.int8))
        coords["label"] = labels
    ds = xr.Dataset(variables, coords=coords)
    quiet = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Lightning's own use of a deprecated torch API, not the user's to act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            return predict(run.checkpoints, ds, transform)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
