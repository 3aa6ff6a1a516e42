"""Rutherford backscattering spectrometry: experiment description and forward simulator."""

from .experiment import (
    Detector,
    Experiment,
    ExperimentError,
    Layer,
    Numerics,
    PhysicsOptions,
    Setup,
    experiment_from_dict,
    experiment_to_dict,
    load_experiment,
)
from .noise import poisson_noise
from .simulator import Instrument, RBSSimulator

__all__ = [
    "Detector",
    "Experiment",
    "Instrument",
    "ExperimentError",
    "Layer",
    "Numerics",
    "PhysicsOptions",
    "RBSSimulator",
    "Setup",
    "experiment_from_dict",
    "experiment_to_dict",
    "load_experiment",
    "poisson_noise",
]
