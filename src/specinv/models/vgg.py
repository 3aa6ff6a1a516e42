"""A 1D VGG classifier (``vgg``), after Annys, Jannis & Verbeeck 2023 (core-loss EELS element
identification), whose CNN is a 1D VGG-11 (Simonyan & Zisserman 2015, configuration A).

Blocks of 3-wide convolutions ("same" padding, batch normalisation, ReLU), each block ending
with a max-pooling over 2: VGG-11 has blocks of 1, 1, 2, 2 and 2 convolutions with 64, 128,
256, 512 and 512 filters (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M).  The map
is flattened (no global pooling, which would lose where an edge is) and fed to an MLP; its
first dense layer holds most of the parameters (512 x L/32 inputs).

A map shorter than 2 positions is not pooled further (very short inputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import check_dropout, check_sequence, check_sizes, mlp_head


@dataclass(frozen=True)
class VGGConfig:
    """Architecture of the 1D VGG network.

    Attributes:
        input_length: channels of the input spectrum (L).
        n_outputs: number of outputs (labels).
        filters: filters of the convolutions of each block.
        convs: convolutions per block (same length as ``filters``); every block ends with
            a max-pooling over 2.
        kernel: width of the convolutions (odd).
        batch_norm: batch normalisation after every convolution (before its ReLU).
        hidden: hidden sizes of the MLP head.
        dropout: dropout before every dense layer of the head.
    """

    input_length: int
    n_outputs: int
    filters: Sequence[int] = (64, 128, 256, 512, 512)
    convs: Sequence[int] = (1, 1, 2, 2, 2)
    kernel: int = 3
    batch_norm: bool = True
    hidden: Sequence[int] = (840, 840)
    dropout: float = 0.0

    def __post_init__(self):
        check_sizes(self, "input_length", "n_outputs", "kernel")
        check_sequence(self, "filters", allow_empty=False)
        check_sequence(self, "convs", allow_empty=False)
        check_sequence(self, "hidden")
        check_dropout(self)
        if len(self.convs) != len(self.filters):
            raise ValueError(
                f"model.convs: expected one count per block of model.filters "
                f"({len(self.filters)}), got {len(self.convs)}"
            )
        if self.kernel % 2 == 0:
            raise ValueError(f"model.kernel: expected an odd width, got {self.kernel}")
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"model.batch_norm: expected true or false, got {self.batch_norm!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class VGG1D(nn.Module):
    """x [B, L] -> logits [B, n_outputs]."""

    def __init__(self, cfg: VGGConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        channels, length = 1, cfg.input_length
        for f, n in zip(cfg.filters, cfg.convs, strict=True):
            for _ in range(n):
                layers.append(
                    nn.Conv1d(
                        channels, f, cfg.kernel, padding=cfg.kernel // 2, bias=not cfg.batch_norm
                    )
                )
                if cfg.batch_norm:
                    layers.append(nn.BatchNorm1d(f))
                layers.append(nn.ReLU(inplace=True))
                channels = f
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
        self.features = nn.Sequential(*layers)
        self.head = mlp_head(channels * length, cfg.hidden, cfg.n_outputs, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)).flatten(1))


__all__ = ["VGG1D", "VGGConfig"]
