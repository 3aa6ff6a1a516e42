"""CNN-GRU mixture density network (Muzakka et al. 2024).

Encoder: 1D convolutions with LeakyReLU; the convolution's output *channels* are read as a
sequence (one step per filter, the positions as features) by a bidirectional GRU; the last
layer's final hidden states of both directions are the summary h.

Head: μ = Linear(h); σ = softplus(MLP([μ, h])) + σ_min; π = softmax(MLP([μ, σ, h])),
for M diagonal Gaussian components over D parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


@dataclass(frozen=True)
class MDNConfig:
    """Architecture (defaults: the paper's dataset-A network).

    Attributes:
        input_length: number of input features (preprocessed spectrum length).
        n_params: number of target parameters D.
        components: mixture components M.
        filters, kernels, strides: the convolution layers.
        gru_hidden, gru_layers: the bidirectional GRU.
        sigma_hidden: hidden sizes of the σ network (input [μ, h]).
        pi_hidden: hidden sizes of the π network (input [μ, σ, h]); empty = linear.
        sigma_min: floor added to σ (in scaled target units).
        negative_slope: of the LeakyReLU activations.
    """

    input_length: int
    n_params: int
    components: int = 1
    filters: Sequence[int] = (45, 35, 30, 25)
    kernels: Sequence[int] = (7, 5, 5, 3)
    strides: Sequence[int] = (1, 2, 1, 2)
    gru_hidden: int = 128
    gru_layers: int = 2
    sigma_hidden: Sequence[int] = (300,)
    pi_hidden: Sequence[int] = ()
    sigma_min: float = 1e-3
    negative_slope: float = 0.01

    def __post_init__(self):
        if not (len(self.filters) == len(self.kernels) == len(self.strides)) or not self.filters:
            raise ValueError("model: filters, kernels and strides need the same, non-zero length")
        for name in ("input_length", "n_params", "components", "gru_hidden", "gru_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name}: expected >= 1, got {getattr(self, name)}")
        object.__setattr__(self, "filters", tuple(self.filters))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "sigma_hidden", tuple(self.sigma_hidden))
        object.__setattr__(self, "pi_hidden", tuple(self.pi_hidden))

    def to_dict(self) -> dict:
        return asdict(self)


def mlp(sizes: Sequence[int], slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


class CNNGRUEncoder(nn.Module):
    """Spectrum [B, L] -> summary h [B, 2·gru_hidden]."""

    def __init__(self, cfg: MDNConfig):
        super().__init__()
        convs, channels, length = [], 1, cfg.input_length
        for f, k, s in zip(cfg.filters, cfg.kernels, cfg.strides, strict=True):
            convs += [
                nn.Conv1d(channels, f, k, stride=s, padding=k // 2),
                nn.LeakyReLU(cfg.negative_slope),
            ]
            channels = f
            length = (length + 2 * (k // 2) - k) // s + 1  # "same" padding: >= 1
        self.cnn = nn.Sequential(*convs)
        self.out_length = length
        self.gru = nn.GRU(
            input_size=length,
            hidden_size=cfg.gru_hidden,
            num_layers=cfg.gru_layers,
            batch_first=True,
            bidirectional=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.cnn(x.unsqueeze(1))  # [B, filters, positions]
        _, h_n = self.gru(features)  # sequence over the filters
        return torch.cat([h_n[-2], h_n[-1]], dim=-1)  # last layer, both directions


class MixtureDensityNetwork(nn.Module):
    """x [B, L] -> (log_pi [B, M], mu [B, M, D], sigma [B, M, D])."""

    def __init__(self, cfg: MDNConfig):
        super().__init__()
        self.cfg = cfg
        m, d, slope = cfg.components, cfg.n_params, cfg.negative_slope
        h = 2 * cfg.gru_hidden
        self.encoder = CNNGRUEncoder(cfg)
        self.mu = nn.Linear(h, m * d)
        self.sigma = mlp([m * d + h, *cfg.sigma_hidden, m * d], slope)
        self.pi = mlp([2 * m * d + h, *cfg.pi_hidden, m], slope)

    def forward(self, x: torch.Tensor):
        cfg = self.cfg
        h = self.encoder(x)
        mu = self.mu(h)
        sigma = F.softplus(self.sigma(torch.cat([mu, h], -1))) + cfg.sigma_min
        log_pi = F.log_softmax(self.pi(torch.cat([mu, sigma, h], -1)), dim=-1)
        shape = (-1, cfg.components, cfg.n_params)
        return log_pi, mu.view(shape), sigma.view(shape)


#: Architectures of the paper (Methods, datasets A, B and C).
PAPER_ARCHITECTURES = {
    "A": dict(
        components=1,
        filters=(45, 35, 30, 25),
        kernels=(7, 5, 5, 3),
        strides=(1, 2, 1, 2),
        sigma_hidden=(300,),
        pi_hidden=(),
    ),
    "B": dict(
        components=8,
        filters=(55, 50, 45, 35, 30, 25),
        kernels=(15, 12, 10, 7, 5, 3),
        strides=(1, 2, 1, 2, 1, 2),
        sigma_hidden=(800,),
        pi_hidden=(100,),
    ),
    "C": dict(
        components=10,
        filters=(55, 50, 45, 35, 30, 25),
        kernels=(15, 12, 10, 7, 5, 3),
        strides=(1, 2, 1, 2, 1, 2),
        sigma_hidden=(800,),
        pi_hidden=(100,),
    ),
}
