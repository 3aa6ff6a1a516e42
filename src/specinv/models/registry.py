"""The registry of inverse models: each kind is a network, its loss and its prediction
format, trained by the one LightningModule (:class:`specinv.training.InverseModel`).

=============  ==========  ============================================================
kind           task        prediction
=============  ==========  ============================================================
``mdn``        regression  mixture of Gaussians: ``log_pi``, ``mu``, ``sigma``, ``mean``, ``std``
``cnn``        regression  point estimate ``mean`` (``std``: spread of an ensemble)
``classifier`` multilabel  ``probability`` of every label (CNN, binary cross-entropy)
``unet``       multilabel  ``probability`` of every label (1D U-Net)
``vit``        multilabel  ``probability`` of every label (1D vision transformer)
``vgg``        multilabel  ``probability`` of every label (1D VGG-11)
=============  ==========  ============================================================

``unet``, ``vit`` and ``vgg`` are the networks of Annys, Jannis & Verbeeck 2023 (element
identification in core-loss EELS), trained on their loss: binary cross-entropy plus macro
soft-F1 (:func:`specinv.models.multilabel.bce_soft_f1_loss`); each has the named
architecture ``annys2023`` (the paper's parameter count: ~20 M, ~2 M and ~45 M for 3072
channels and 80 labels) and ``small`` (tests, CPU runs).

Predictions are datasets over ``sample`` in physical units (the preprocessing's target
scaling undone), with the ``true`` targets for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..config import ConfigError
from .cnn import CNNConfig, ConvNet
from .mdn import PAPER_ARCHITECTURES, MDNConfig, MixtureDensityNetwork
from .mixture import mixture_mean, mixture_nll, mixture_variance
from .multilabel import bce_soft_f1_loss
from .unet import UNet1D, UNetConfig
from .vgg import VGG1D, VGGConfig
from .vit import VisionTransformer1D, ViTConfig


class ModelKind:
    """One kind of inverse model (class attributes and class methods only).

    Attributes:
        name: registry name; label: its short display name ("MDN").
        task: the task it solves ("regression" or "multilabel").
        config_class: dataclass of its architecture; ``size_fields`` name its fields for the
            input length and the number of targets, which the data decide.
        architectures: named architectures (field values); ``default_architecture``.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    task: ClassVar[str]
    config_class: ClassVar[type]
    size_fields: ClassVar[tuple[str, str]]
    architectures: ClassVar[dict[str, dict]]
    default_architecture: ClassVar[str]

    @classmethod
    def architecture(cls, section: Mapping[str, Any]) -> dict[str, Any]:
        """The architecture of a ``model`` section: a named architecture plus overrides of
        its fields (ConfigError naming an unknown one)."""
        m = {k: v for k, v in section.items() if k != "kind"}
        name = m.pop("architecture", None) or cls.default_architecture
        if name not in cls.architectures:
            raise ConfigError(
                f"model.architecture: expected one of "
                f"{', '.join(cls.architectures)} for model kind {cls.name!r}, "
                f"got {name!r}"
            )
        allowed = {f.name for f in fields(cls.config_class)} - set(cls.size_fields)
        unknown = sorted(set(m) - allowed)
        if unknown:
            raise ConfigError(
                f"model: unknown key(s) {', '.join(unknown)} for model kind "
                f"{cls.name!r} (expected architecture or one of "
                f"{', '.join(sorted(allowed))})"
            )
        arch = {**cls.architectures[name], **m}
        try:  # the fields' own checks, before any training starts (the sizes are the data's)
            cls.config_class(**arch, **dict.fromkeys(cls.size_fields, 1))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model ({cls.name}, architecture {name}): {exc}") from None
        return arch

    @classmethod
    def build(cls, architecture: Mapping[str, Any], input_length: int, n_targets: int) -> nn.Module:
        size = dict(zip(cls.size_fields, (input_length, n_targets), strict=True))
        try:
            cfg = cls.config_class(**{**architecture, **size})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls._network(cfg)

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def loss(cls, output, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def prediction(
        cls,
        members: Sequence[Any],
        processed: xr.Dataset,
        target_min: np.ndarray,
        target_max: np.ndarray,
    ) -> xr.Dataset:
        """The prediction dataset of every network's outputs on the spectra of
        ``processed`` (several networks: a deep ensemble, pooled)."""
        raise NotImplementedError


def _physical(processed: xr.Dataset) -> tuple[np.ndarray, str]:
    return processed["params"].values, processed["params"].attrs.get("units", "")


class MDNKind(ModelKind):
    """The CNN-GRU mixture density network of Muzakka et al. 2024."""

    name, label, task = "mdn", "MDN", "regression"
    config_class = MDNConfig
    size_fields = ("input_length", "n_params")
    architectures = PAPER_ARCHITECTURES
    default_architecture = "A"

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        return MixtureDensityNetwork(cfg)

    @classmethod
    def loss(cls, output, y):
        return mixture_nll(*output, y)

    @classmethod
    def prediction(cls, members, processed, target_min, target_max):
        """One mixture of all networks' components, each network weighted 1/K: its mean is
        the average of the networks' means, its variance adds their disagreement."""
        log_pi, mu, sigma = (torch.cat([m[i].double() for m in members], dim=1) for i in range(3))
        log_pi = log_pi - math.log(len(members))
        scale = torch.as_tensor(target_max - target_min)
        offset = torch.as_tensor(target_min)
        mean = mixture_mean(log_pi, mu) * scale + offset
        std = mixture_variance(log_pi, mu, sigma).sqrt() * scale
        true, unit = _physical(processed)
        dims = ("sample", "component", "param")
        return xr.Dataset(
            {
                "log_pi": (dims[:2], log_pi.numpy(), {"long_name": "log mixture weights"}),
                "mu": (
                    dims,
                    (mu * scale + offset).numpy(),
                    {"long_name": "component means", "units": unit},
                ),
                "sigma": (
                    dims,
                    (sigma * scale).numpy(),
                    {"long_name": "component standard deviations", "units": unit},
                ),
                "mean": (dims[::2], mean.numpy(), {"long_name": "mixture mean", "units": unit}),
                "std": (
                    dims[::2],
                    std.numpy(),
                    {"long_name": "mixture standard deviation", "units": unit},
                ),
                "true": (dims[::2], true, {"long_name": "true parameters", "units": unit}),
            },
            coords={
                "sample": processed["sample"].values,
                "param": processed["param"].values,
                "component": np.arange(log_pi.shape[1]),
            },
        )


class CNNKind(ModelKind):
    """A convolutional network regressing the (scaled) parameters, trained on the mean
    squared error."""

    name, label, task = "cnn", "CNN", "regression"
    config_class = CNNConfig
    size_fields = ("input_length", "n_outputs")
    architectures = {
        "default": {},
        "small": {
            "filters": (16, 16, 32),
            "kernels": (7, 5, 3),
            "strides": (2, 2, 2),
            "hidden": (64,),
        },
        # Boulle & Debelle 2023 (XRD strain profiles), their Fig. 2 as the text describes it:
        # kernels of 15, two successive convolutions, batch normalisation, max-pooling over
        # 2, ReLU, a 4 x 128 map flattened to 512 and a first dense layer of 1000.  The
        # figure (filters, strides, further dense layers) is not in the text; these blocks
        # (16, 32, 64, 128 filters, the first convolution of each with stride 2) give the
        # 4 x 128 map from 1001 points, and with a dense layer of 100 the paper's 1.104e6
        # parameters for 14 outputs (1.1035e6).
        "boulle2023": {
            "filters": (16, 16, 32, 32, 64, 64, 128, 128),
            "kernels": (15,) * 8,
            "strides": (2, 1) * 4,
            "block": 2,
            "batch_norm": True,
            "negative_slope": 0.0,
            "hidden": (1000, 100),
        },
    }
    default_architecture = "default"

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        return ConvNet(cfg)

    @classmethod
    def loss(cls, output, y):
        return F.mse_loss(output, y)

    @classmethod
    def prediction(cls, members, processed, target_min, target_max):
        """The average of the networks' estimates; ``std`` their spread (NaN for one)."""
        z = torch.stack([m.double() for m in members])  # [K, N, D]
        scale, offset = target_max - target_min, target_min
        mean = z.mean(0).numpy() * scale + offset
        std = (
            z.std(0, correction=1).numpy() * scale
            if len(members) > 1
            else np.full(mean.shape, np.nan)
        )
        true, unit = _physical(processed)
        dims = ("sample", "param")
        return xr.Dataset(
            {
                "mean": (dims, mean, {"long_name": "estimate", "units": unit}),
                "std": (
                    dims,
                    std,
                    {"long_name": "spread of the ensemble's estimates", "units": unit},
                ),
                "true": (dims, true, {"long_name": "true parameters", "units": unit}),
            },
            coords={"sample": processed["sample"].values, "param": processed["param"].values},
        )


class MultiLabelKind(ModelKind):
    """A network with one logit per label (multi-label classification): the prediction is
    the probability of every label."""

    task = "multilabel"

    @classmethod
    def prediction(cls, members, processed, target_min, target_max):
        """The average of the networks' probabilities; with several networks also each
        one's (``member_probability`` [member, sample, label], float32)."""
        each = torch.stack([torch.sigmoid(m.double()) for m in members])
        p = each.mean(0).numpy()
        dims = ("sample", "label")
        several = (
            {
                "member_probability": (
                    ("member", *dims),
                    each.float().numpy(),
                    {"long_name": "probability predicted by each network"},
                )
            }
            if len(members) > 1
            else {}
        )
        return xr.Dataset(
            {
                "probability": (dims, p, {"long_name": "predicted probability of the label"}),
                **several,
                "true": (
                    dims,
                    processed["labels"].values.astype(np.int8),
                    {"long_name": "1 where the label is present"},
                ),
                "params": processed["params"].variable,
            },
            coords={
                "sample": processed["sample"].values,
                "label": processed["label"].values,
                "param": processed["param"].values,
            },
        )


class ClassifierKind(MultiLabelKind, CNNKind):
    """A convolutional network with one logit per label, trained on the binary
    cross-entropy of every label (multi-label classification)."""

    name, label = "classifier", "CNN classifier"

    @classmethod
    def loss(cls, output, y):
        return F.binary_cross_entropy_with_logits(output, y)


class AnnysKind(MultiLabelKind):
    """A multi-label network of Annys, Jannis & Verbeeck 2023, trained on their loss: the
    binary cross-entropy plus the macro soft-F1 loss over the batch."""

    size_fields = ("input_length", "n_outputs")
    default_architecture = "annys2023"

    @classmethod
    def loss(cls, output, y):
        return bce_soft_f1_loss(output, y)


class UNetKind(AnnysKind):
    """A 1D U-Net (Ronneberger et al. 2015) with a 1x1-convolution + MLP head
    (:mod:`specinv.models.unet`)."""

    name, label = "unet", "U-Net"
    config_class = UNetConfig
    architectures = {
        # Ronneberger's filters (64 ... 1024 in the bottleneck) over 4 levels; the paper's
        # ~20 M parameters with a head of 4 channels x 3072 positions -> 768 -> 80 labels
        # (20.3 M for 3072 channels, 80 labels; the head's sizes are not the paper's)
        "annys2023": {
            "depth": 4,
            "base_filters": 64,
            "head_channels": 4,
            "hidden": (768,),
            "dropout": 0.0,
        },
        "small": {"depth": 3, "base_filters": 4, "head_channels": 1, "hidden": (24,)},
    }

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        return UNet1D(cfg)


class ViTKind(AnnysKind):
    """A 1D vision transformer, tokens flattened into the head
    (:mod:`specinv.models.vit`)."""

    name, label = "vit", "ViT"
    config_class = ViTConfig
    architectures = {
        # the paper's ~2 M parameters: 192 tokens of 16 channels, 6 layers of width 96
        # (1.94 M for 3072 channels, 80 labels; the sizes are not the paper's)
        "annys2023": {
            "patch": 16,
            "dim": 96,
            "depth": 6,
            "heads": 8,
            "mlp_dim": 192,
            "dropout": 0.0,
            "pool": "flatten",
            "cls_token": False,
        },
        "small": {"patch": 64, "dim": 16, "depth": 2, "heads": 2, "mlp_dim": 32},
    }

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        return VisionTransformer1D(cfg)


class VGGKind(AnnysKind):
    """A 1D VGG-11 with batch normalisation and an MLP head (:mod:`specinv.models.vgg`)."""

    name, label = "vgg", "VGG"
    config_class = VGGConfig
    architectures = {
        # VGG-11's convolutions (3.1 M parameters) and a head 512 x 96 -> 840 -> 840 -> 80:
        # the paper's ~45 M parameters (45.1 M for 3072 channels, 80 labels; the head's
        # sizes are not the paper's)
        "annys2023": {
            "filters": (64, 128, 256, 512, 512),
            "convs": (1, 1, 2, 2, 2),
            "kernel": 3,
            "batch_norm": True,
            "hidden": (840, 840),
            "dropout": 0.0,
        },
        "small": {"filters": (4, 8, 16, 16, 16), "convs": (1, 1, 2, 2, 2), "hidden": (32,)},
    }

    @classmethod
    def _network(cls, cfg) -> nn.Module:
        return VGG1D(cfg)


#: name -> kind; the only place that names every inverse model.
MODELS: dict[str, type[ModelKind]] = {
    k.name: k for k in (MDNKind, CNNKind, ClassifierKind, UNetKind, ViTKind, VGGKind)
}

#: the model kind of each task when a configuration does not name one
DEFAULT_KIND = {"regression": "mdn", "multilabel": "classifier"}


def model_kind(name: str) -> type[ModelKind]:
    if name not in MODELS:
        raise ConfigError(f"model.kind: expected one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name]


def model_spec(section: Mapping[str, Any], task: str) -> dict[str, Any]:
    """``{"kind": name, "architecture": {...}}`` of a ``model`` section for a technique's
    ``task`` (the kind defaults to the task's; it must solve that task)."""
    name = section.get("kind") or DEFAULT_KIND[task]
    kind = model_kind(name)
    if kind.task != task:
        raise ConfigError(
            f"model.kind: {name!r} solves {kind.task}, the technique needs "
            f"{task} (e.g. {DEFAULT_KIND[task]!r})"
        )
    arch = kind.architecture(section)
    return {
        "kind": name,
        "architecture": {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()},
    }
