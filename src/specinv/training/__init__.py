"""Training the neural inverse models (PyTorch Lightning) and predicting with them.

The settings (:class:`TrainingSettings`, :func:`model_settings`) import no Lightning; the
rest is imported on first use, so that planning a workflow stays fast.
"""

from importlib import import_module

from .settings import TrainingSettings, model_settings

_LAZY = {
    "InverseModel": ".lightning",
    "ProcessedData": ".lightning",
    "ResampledNoiseData": ".lightning",
    "median_relative_error": ".staged",
    "noise_free_training_spectra": ".staged",
    "predict": ".staged",
    "technique_noise": ".staged",
    "TrainingDiverged": ".staged",
    "train_staged": ".staged",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainingSettings", "model_settings", *_LAZY]
