"""Training the neural inverse models (PyTorch Lightning) and predicting with them."""

from .lightning import MDNRegressor, ProcessedData, ResampledNoiseData
from .staged import (
    TrainingSettings,
    median_relative_error,
    model_settings,
    noise_free_training_spectra,
    predict,
    train_staged,
)

__all__ = [
    "MDNRegressor",
    "ProcessedData",
    "ResampledNoiseData",
    "TrainingSettings",
    "median_relative_error",
    "model_settings",
    "noise_free_training_spectra",
    "predict",
    "train_staged",
]
