"""The interface every technique implements."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch


class Technique(abc.ABC):
    """A forward model of one kind of spectrum.

    Attributes:
        name: short name ("rbs").
        parameter_names: names of the physical parameters, in order.
        parameter_units: their units.
        channel_dim: name of the spectrum axis in datasets ("channel").
    """

    name: str
    parameter_names: list[str]
    parameter_units: list[str]
    channel_dim: str = "channel"

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    @abc.abstractmethod
    def n_channels(self) -> int:
        """Length of a spectrum."""

    @abc.abstractmethod
    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        """Expected (noise-free) spectra [B, channels] of parameters [B, D] (differentiable
        where the technique allows)."""

    @abc.abstractmethod
    def channel_coordinates(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Coordinates along the spectrum axis: name -> (values, attributes with units)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the forward model (stored with datasets)."""
