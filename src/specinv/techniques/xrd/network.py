"""A trained network's estimate of a measured diffraction curve: the start of a fit.

The network of a workflow run (``results/<name>``) saw curves on its own axis (e.g. the
paper's ΔQ/Q_B from −0.1 to 0.01 in 1001 points).  A measured curve is put on that axis as
the paper does for its experimental curves: its points converted to the run's coordinate
for the same reflection, log intensities interpolated linearly, and the axis beyond the
measured range filled with the curve's smallest intensity.  The run's preprocessing and
network then give the parameters (the mean of an ensemble's or a mixture's estimates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ...config.errors import ConfigError
from ...physics.xrd import convert_axis
from ...training.runs import NetworkRun, predict_spectra
from ...training.runs import load_network_run as _load_run
from .curves import MeasuredCurve
from .technique import XRDTechnique


def load_network_run(results: str | Path, size: int | None = None) -> NetworkRun:
    """The XRD network of training-set size ``size`` (None: the largest trained) of the run
    in ``results`` (:func:`specinv.training.runs.load_network_run`)."""
    return _load_run(results, "xrd", size)


def run_axis(run: NetworkRun) -> tuple[str, np.ndarray]:
    """(coordinate, values) of the axis the run's curves were simulated on."""
    coordinate = run.forward_model["axis"]["coordinate"]
    with xr.open_dataset(run.test_path, engine="h5netcdf") as ds:
        return coordinate, ds[coordinate].values.astype(np.float64)


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
    _, axis_values = run_axis(run)
    counts = curve_on_axis(curve, coordinate, run_technique, axis_values)
    return predict_spectra(run, counts[None])["mean"].values[0]
