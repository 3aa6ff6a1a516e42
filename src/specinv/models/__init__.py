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
from .multilabel import bce_soft_f1_loss, soft_f1_loss
from .registry import DEFAULT_KIND, MODELS, ModelKind, model_kind, model_spec
from .unet import UNet1D, UNetConfig
from .vgg import VGG1D, VGGConfig
from .vit import VisionTransformer1D, ViTConfig

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
    "UNet1D",
    "UNetConfig",
    "VGG1D",
    "VGGConfig",
    "ViTConfig",
    "VisionTransformer1D",
    "bce_soft_f1_loss",
    "mixture_covariance",
    "mixture_log_prob",
    "mixture_mean",
    "mixture_nll",
    "mixture_sample",
    "mixture_variance",
    "model_kind",
    "model_spec",
    "soft_f1_loss",
]
