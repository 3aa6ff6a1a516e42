"""Read the JSON metadata and CSV spectra written next to JaBS reference simulations.

The reference set (``shared/reference/jabs/<case>/<variant>.json|.csv``) records every
setting of a JaBS run: beam, geometry, detector, physics and the layers.  These helpers turn
such a record into an :class:`~specinv.physics.rbs.experiment.Experiment`, so that our
simulator can be run on exactly the same problem.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from .experiment import (
    Detector,
    Experiment,
    ExperimentError,
    PhysicsOptions,
    Setup,
    validate_layers,
)


def _ion_name(text: str) -> str:
    # e.g. "4He (mass from JIBAL/AME2020, 4.0026 u)"
    return text.split()[0]


def physics_from_record(record: dict[str, Any]) -> PhysicsOptions:
    """Screening and straggling model of a reference record."""
    screening = str(record.get("screening_correction", record.get("cross_section", ""))).lower()
    if "andersen" in screening:
        scr = "andersen"
    elif "ecuyer" in screening:
        scr = "lecuyer"
    elif "rutherford" in screening or screening in ("", "none"):
        scr = "none"
    else:
        raise ExperimentError(f"screening_correction: unsupported {screening!r}")
    strag_text = str(record.get("straggling", "")).lower()
    strag = "none" if ("none" in strag_text or "1e-6" in strag_text) else "bohr"
    return PhysicsOptions(screening=scr, straggling=strag, nuclear_stopping=True)


def experiment_from_record(record: dict[str, Any]) -> Experiment:
    """An :class:`Experiment` equivalent to a JaBS reference run."""
    try:
        cal = record["calibration"]
        detector = Detector(
            channels=int(record["n_channels"]),
            gain_keV_per_channel=float(cal["slope_keV_per_channel"]),
            offset_keV=float(cal.get("offset_keV", 0.0)),
            resolution_fwhm_keV=float(record["detector_resolution_FWHM_keV"]),
        )
        setup = Setup(
            ion=_ion_name(record["ion"]),
            beam_energy_keV=float(record["beam_energy_keV"]),
            beam_spread_fwhm_keV=float(record.get("beam_energy_spread_FWHM_keV", 0.0)),
            incidence_deg=float(record["incidence_angle_alpha_deg"]),
            scattering_deg=float(record["scattering_angle_theta_deg"]),
            exit_deg=float(record["exit_angle_beta_deg"]),
            detector=detector,
            fluence_times_solid_angle_sr=float(record["particles_times_solid_angle_sr"]),
            energy_cutoff_keV=float(record["emin_keV"]),
            physics=physics_from_record(record),
        )
        layers = validate_layers(record["layers_1e15_at_per_cm2"])
    except KeyError as exc:
        raise ExperimentError(f"JaBS record: missing key {exc.args[0]!r}") from None
    return Experiment(setup=setup, layers=layers)


def load_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def load_spectrum(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(lower channel energies keV, total counts, per-reaction counts) of a JaBS CSV file."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, data = rows[0], np.array(rows[1:], dtype=float)
    columns = {name: data[:, i] for i, name in enumerate(header)}
    parts = {k: v for k, v in columns.items() if k not in ("channel", "counts", "E_low_keV")}
    return columns["E_low_keV"], columns["counts"], parts
