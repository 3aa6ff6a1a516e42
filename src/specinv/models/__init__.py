"""Neural inverse models."""

from .mdn import PAPER_ARCHITECTURES, CNNGRUEncoder, MDNConfig, MixtureDensityNetwork
from .mixture import (
    mixture_covariance,
    mixture_log_prob,
    mixture_mean,
    mixture_nll,
    mixture_sample,
    mixture_variance,
)

__all__ = [
    "PAPER_ARCHITECTURES",
    "CNNGRUEncoder",
    "MDNConfig",
    "MixtureDensityNetwork",
    "mixture_covariance",
    "mixture_log_prob",
    "mixture_mean",
    "mixture_nll",
    "mixture_sample",
    "mixture_variance",
]
