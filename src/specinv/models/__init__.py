"""Neural inverse models: the registry of kinds (:data:`MODELS`), their networks and losses."""

from .cnn import CNNConfig, ConvNet
from .mdn import PAPER_ARCHITECTURES, CNNGRUEncoder, MDNConfig, MixtureDensityNetwork
from .mixture import (
    mixture_covariance,
    mixture_log_prob,
    mixture_mean,
    mixture_nll,
    mixture_sample,
    mixture_variance,
)
from .registry import DEFAULT_KIND, MODELS, ModelKind, model_kind, model_spec

__all__ = [
    "DEFAULT_KIND",
    "MODELS",
    "PAPER_ARCHITECTURES",
    "CNNConfig",
    "CNNGRUEncoder",
    "ConvNet",
    "MDNConfig",
    "MixtureDensityNetwork",
    "ModelKind",
    "mixture_covariance",
    "mixture_log_prob",
    "mixture_mean",
    "mixture_nll",
    "mixture_sample",
    "mixture_variance",
    "model_kind",
    "model_spec",
]
