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
    load_experiment,
)
from .noise import poisson_noise
from .simulator import RBSSimulator

__all__ = [
    "Detector",
    "Experiment",
    "ExperimentError",
    "Layer",
    "Numerics",
    "PhysicsOptions",
    "RBSSimulator",
    "Setup",
    "experiment_from_dict",
    "load_experiment",
    "poisson_noise",
]
