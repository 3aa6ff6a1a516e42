"""A 1D U-Net with a classification head (``unet``), after Annys, Jannis & Verbeeck 2023
(core-loss EELS element identification), whose U-Net follows Ronneberger et al. 2015.

Encoder: ``depth`` levels, each two 3-wide convolutions (batch normalisation, ReLU) and a
max-pooling over 2; the number of filters starts at ``base_filters`` and doubles per level.
Bottleneck: two convolutions with twice the filters of the last level.  Decoder: per level a
transposed convolution (kernel 2, stride 2) that doubles the length and halves the filters,
the concatenation with the encoder's features of that level (skip connection) and two
convolutions.  The map keeps the input's resolution, so an edge onset stays where it is.

Head: global average pooling over energy would throw that position away, so (as the final
1x1 convolution of the original U-Net) a 1x1 convolution reduces the map to
``head_channels`` channels, which are flattened and fed to an MLP: the first dense layer is a
learnable weighted sum over every position.

Lengths not divisible by 2**depth are padded with zeros at the end (the high-energy side,
where the preprocessed spectra are zero-padded anyway) inside ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from .layers import check_dropout, check_sequence, check_sizes, mlp_head


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the 1D U-Net classifier.

    Attributes:
        input_length: channels of the input spectrum (L).
        n_outputs: number of outputs (labels).
        depth: levels of the encoder (and decoder); each halves the length.
        base_filters: filters of the first level; they double per level (the bottleneck has
            ``base_filters * 2**depth``).
        head_channels: channels of the 1x1 convolution whose map [head_channels, L'] is
            flattened for the MLP (L' = L padded to a multiple of 2**depth).
        hidden: hidden sizes of the MLP head (empty: one dense layer to the outputs).
        dropout: dropout before every dense layer of the head.
    """

    input_length: int
    n_outputs: int
    depth: int = 4
    base_filters: int = 64
    head_channels: int = 4
    hidden: Sequence[int] = (768,)
    dropout: float = 0.0

    def __post_init__(self):
        check_sizes(self, "input_length", "n_outputs", "depth", "base_filters", "head_channels")
        check_sequence(self, "hidden")
        check_dropout(self)

    @property
    def padded_length(self) -> int:
        """The input length rounded up to a multiple of 2**depth."""
        step = 2**self.depth
        return -(-self.input_length // step) * step

    def to_dict(self) -> dict:
        return asdict(self)


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """[B, c_in, L] -> [B, c_out, L]: two (3-wide convolution, batch norm, ReLU)."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv1d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet1D(nn.Module):
    """x [B, L] -> logits [B, n_outputs]."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_filters * 2**i for i in range(cfg.depth + 1)]
        self.down = nn.ModuleList(
            double_conv(c_in, c_out)
            for c_in, c_out in zip([1, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottleneck = double_conv(widths[-2], widths[-1])
        # decoder, deepest level first: upsample widths[i + 1] -> widths[i], concatenate the
        # skip (widths[i]) and convolve 2 * widths[i] -> widths[i]
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(cfg.depth))
        )
        self.merge = nn.ModuleList(
            double_conv(2 * widths[i], widths[i]) for i in reversed(range(cfg.depth))
        )
        self.reduce = nn.Conv1d(widths[0], cfg.head_channels, 1)
        self.head = mlp_head(
            cfg.head_channels * cfg.padded_length, cfg.hidden, cfg.n_outputs, cfg.dropout
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L] -> the decoder's map [B, base_filters, L'] (L' = padded length)."""
        if x.shape[-1] != self.cfg.input_length:
            raise ValueError(
                f"UNet1D: expected spectra of {self.cfg.input_length} channels, got {x.shape[-1]}"
            )
        h = F.pad(x, (0, self.cfg.padded_length - x.shape[-1])).unsqueeze(1)
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool1d(h, 2)
        h = self.bottleneck(h)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            h = merge(torch.cat([skip, up(h)], dim=1))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.reduce(self.features(x)).flatten(1))


__all__ = ["UNet1D", "UNetConfig", "double_conv"]
