"""Convolutional networks with a point-estimate head: regression of parameters (``cnn``) or
multi-label classification (``classifier``, one logit per label).

Encoder: 1D convolutions with LeakyReLU, flattened; head: an MLP to the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class CNNConfig:
    """Architecture of a convolutional network with an MLP head.

    Attributes:
        input_length: number of input features (preprocessed spectrum length).
        n_outputs: number of outputs (parameters, or labels).
        filters, kernels, strides: the convolution layers.
        hidden: hidden sizes of the head.
        dropout: dropout before every hidden layer of the head.
        negative_slope: of the LeakyReLU activations.
    """

    input_length: int
    n_outputs: int
    filters: Sequence[int] = (32, 32, 64, 64)
    kernels: Sequence[int] = (7, 5, 5, 3)
    strides: Sequence[int] = (1, 2, 1, 2)
    hidden: Sequence[int] = (256,)
    dropout: float = 0.0
    negative_slope: float = 0.01

    def __post_init__(self):
        if not (len(self.filters) == len(self.kernels) == len(self.strides)) or not self.filters:
            raise ValueError("model: filters, kernels and strides need the same, non-zero length")
        for name in ("input_length", "n_outputs"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name}: expected >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout: expected a value in [0, 1), got {self.dropout}")
        for name in ("filters", "kernels", "strides", "hidden"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNet(nn.Module):
    """x [B, L] -> outputs [B, n_outputs] (unbounded: scaled targets or logits)."""

    def __init__(self, cfg: CNNConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        channels, length = 1, cfg.input_length
        for f, k, s in zip(cfg.filters, cfg.kernels, cfg.strides, strict=True):
            layers += [
                nn.Conv1d(channels, f, k, stride=s, padding=k // 2),
                nn.LeakyReLU(cfg.negative_slope),
            ]
            channels, length = f, (length + 2 * (k // 2) - k) // s + 1
        self.cnn = nn.Sequential(*layers)
        head: list[nn.Module] = []
        width = channels * length
        for h in cfg.hidden:
            if cfg.dropout:
                head.append(nn.Dropout(cfg.dropout))
            head += [nn.Linear(width, h), nn.LeakyReLU(cfg.negative_slope)]
            width = h
        head.append(nn.Linear(width, cfg.n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(x.unsqueeze(1)).flatten(1))


__all__ = ["CNNConfig", "ConvNet"]
