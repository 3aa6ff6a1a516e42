"""Convolutional networks with a point-estimate head: regression of parameters (``cnn``) or
multi-label classification (``classifier``, one logit per label).

Encoder: 1D convolutions ("same" padding) with LeakyReLU or ReLU, optionally grouped in
blocks that end with batch normalisation and a max-pooling over 2; flattened; head: an MLP
to the outputs.
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
        negative_slope: of the LeakyReLU activations (0: ReLU).
        block: convolutions per block; a block ends with batch normalisation (if
            ``batch_norm``) and a max-pooling over 2 positions.  0: no blocks (plain
            convolutions, no pooling).
        batch_norm: batch normalisation at the end of every block.
    """

    input_length: int
    n_outputs: int
    filters: Sequence[int] = (32, 32, 64, 64)
    kernels: Sequence[int] = (7, 5, 5, 3)
    strides: Sequence[int] = (1, 2, 1, 2)
    hidden: Sequence[int] = (256,)
    dropout: float = 0.0
    negative_slope: float = 0.01
    block: int = 0
    batch_norm: bool = False

    def __post_init__(self):
        if not (len(self.filters) == len(self.kernels) == len(self.strides)) or not self.filters:
            raise ValueError("model: filters, kernels and strides need the same, non-zero length")
        if self.block < 0 or (self.block and len(self.filters) % self.block):
            raise ValueError(
                f"model.block: expected 0 or a divisor of the {len(self.filters)} convolutions, "
                f"got {self.block}"
            )
        if self.batch_norm and not self.block:
            raise ValueError("model.batch_norm: needs blocks (model.block >= 1)")
        if self.negative_slope < 0:
            raise ValueError(f"model.negative_slope: expected >= 0, got {self.negative_slope}")
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
        for i, (f, k, s) in enumerate(zip(cfg.filters, cfg.kernels, cfg.strides, strict=True)):
            layers += [nn.Conv1d(channels, f, k, stride=s, padding=k // 2), _activation(cfg)]
            channels, length = f, (length + 2 * (k // 2) - k) // s + 1
            if cfg.block and (i + 1) % cfg.block == 0:
                if cfg.batch_norm:
                    layers.append(nn.BatchNorm1d(f))
                if length >= 2:  # a spectrum too short to pool keeps its length
                    layers.append(nn.MaxPool1d(2))
                    length //= 2
        self.cnn = nn.Sequential(*layers)
        head: list[nn.Module] = []
        width = channels * length
        for h in cfg.hidden:
            if cfg.dropout:
                head.append(nn.Dropout(cfg.dropout))
            head += [nn.Linear(width, h), _activation(cfg)]
            width = h
        head.append(nn.Linear(width, cfg.n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(x.unsqueeze(1)).flatten(1))


def _activation(cfg: CNNConfig) -> nn.Module:
    return nn.LeakyReLU(cfg.negative_slope) if cfg.negative_slope else nn.ReLU()


__all__ = ["CNNConfig", "ConvNet"]
