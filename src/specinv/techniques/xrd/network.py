"""A trained network's estimate of a measured diffraction curve: the start of a fit.

The network of a workflow run (``results/<name>``) saw curves on its own axis (e.g. the
paper's ΔQ/Q_B from −0.1 to 0.01 in 1001 points).  A measured curve is put on that axis as
the paper does for its experimental curves: its points converted to the run's coordinate
for the same reflection, log intensities interpolated linearly, and the axis beyond the
measured range filled with the curve's smallest intensity.  The run's preprocessing and
network then give the parameters (the mean of an ensemble's or a mixture's estimates).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ...config.errors import ConfigError
from ...physics.xrd import convert_axis
from .curves import MeasuredCurve
from .technique import XRDTechnique


@dataclass(frozen=True)
class NetworkRun:
    """What a workflow run left for estimating new curves: its checkpoints (one network or
    an ensemble), preprocessing, the ``xrd`` section it simulated (the forward model's
    description) and its curves' axis (coordinate name and values)."""

    checkpoints: list[Path]
    transform_path: Path
    forward_model: dict
    coordinate: str
    axis_values: np.ndarray

    @property
    def parameter_names(self) -> list[str]:
        return list(self.forward_model["parameters"])


def load_network_run(results: str | Path, size: int | None = None) -> NetworkRun:
    """The network of training-set size ``size`` (None: the largest trained) of the run
    whose outputs are in ``results`` (``results/<name>`` of a workflow run).

    Raises:
        ConfigError: naming the missing file or size and what the folder holds.
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
        if forward_model.get("technique") != "xrd":
            raise ConfigError(
                f"--network {results}: expected a run of technique xrd, got "
                f"{forward_model.get('technique')!r}"
            )
        coordinate = forward_model["axis"]["coordinate"]
        axis_values = ds[coordinate].values.astype(np.float64)
    return NetworkRun(checkpoints, transform, forward_model, coordinate, axis_values)


def curve_on_axis(
    curve: MeasuredCurve, coordinate: str, technique: XRDTechnique, axis_values: np.ndarray
) -> np.ndarray:
    """The measured ``curve`` (its angles on ``coordinate``: ``two_theta_deg`` or
    ``theta_deg``) on another axis of the same reflection (``technique``'s Bragg angle):
    log intensities interpolated, the smallest measured intensity outside its range."""
    bragg = technique.simulator.reflection.bragg_angle_rad
    target = technique.setup.axis
    points = convert_axis(curve.angle_deg, coordinate, target, bragg)
    positive = curve.intensity[curve.intensity > 0]
    if positive.size == 0:
        raise ConfigError(f"{curve.source}: every intensity is zero")
    floor = float(positive.min())
    log_i = np.log10(np.maximum(curve.intensity, floor))
    return 10.0 ** np.interp(
        axis_values, points, log_i, left=np.log10(floor), right=np.log10(floor)
    )


def network_estimate(
    run: NetworkRun, curve: MeasuredCurve, coordinate: str, technique: XRDTechnique
) -> np.ndarray:
    """The network's parameters [D] for the measured ``curve`` (see the module).

    ``technique``: the fit's XRD technique (crystal, reflection, wavelength and parameters
    must be those the network was trained for).

    Raises:
        ConfigError: the run's crystal, reflection, wavelength or parameters differ.
    """
    from ...data import SpectrumTransform
    from ...training import predict

    trained = run.forward_model
    mine = technique.identity()
    for key in ("reflection", "wavelength_A"):
        if list(np.atleast_1d(trained[key])) != list(np.atleast_1d(mine[key])):
            raise ConfigError(
                f"{key}: the network was trained for {trained[key]}, the experiment file "
                f"has {mine[key]}"
            )
    if trained["crystal"]["name"] != mine["crystal"]["name"]:
        raise ConfigError(
            f"crystal: the network was trained for {trained['crystal']['name']}, the "
            f"experiment file has {mine['crystal']['name']}"
        )
    if run.parameter_names != technique.parameter_names:
        raise ConfigError(
            f"strain_weights: the network estimates {len(run.parameter_names)} parameters "
            f"({', '.join(run.parameter_names)}); the experiment file's technique has "
            f"{technique.n_parameters}"
        )
    # the run's own axis: the curve is put on it with the run's reflection
    run_technique = XRDTechnique(
        {**technique.section, "axis": trained["axis"]}, dtype=technique.dtype
    )
    counts = curve_on_axis(curve, coordinate, run_technique, run.axis_values)
    transform = SpectrumTransform.load(run.transform_path)
    x = transform.features(counts[None])
    names = run.parameter_names
    ds = xr.Dataset(
        {
            "x": (("sample", "feature"), x),
            "params": (("sample", "param"), np.full((1, len(names)), np.nan)),
        },
        coords={"sample": [0], "param": names},
    )
    # Lightning's start-up messages (accelerators, tips) are not for a command's output
    quiet = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Lightning's own use of a deprecated torch API, not the user's to act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            return predict(run.checkpoints, ds, transform)["mean"].values[0]
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
