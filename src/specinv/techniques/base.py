"""The interface every technique implements."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class PartialSimulation:
    """How a forward model simulates only the part of a spectrum that some parameters change.

    The spectrum is a sum of contributions of ordered groups 0 … G−1, and a parameter of
    group g changes only the contributions of groups ≥ g.  In RBS the groups are the layers:
    a layer's composition changes the scattering in it and, through the energy loss, below
    it, but not above it.  Finite-difference derivatives with respect to a parameter of a
    deep group then need only the deep part of the spectrum.

    Attributes:
        simulate_from: ``simulate_from(params [K, D], g)`` -> the contributions of groups
            ≥ g [K, channels]; ``g = 0`` is the whole spectrum.
        parameter_group: group of every parameter [D] (integers in 0 … G−1).
        relative_cost: [G] cost of ``simulate_from(·, g)`` relative to the whole spectrum
            (1 for g = 0; 0 where groups ≥ g contribute nothing); decides where a partial
            simulation pays off and how it counts in the simulation budget.
    """

    simulate_from: Callable[[torch.Tensor, int], torch.Tensor]
    parameter_group: np.ndarray
    relative_cost: np.ndarray


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

    def partial_simulation(self) -> PartialSimulation | None:
        """The technique's :class:`PartialSimulation`, or None when every parameter can
        change the whole spectrum (the default)."""
        return None

    @abc.abstractmethod
    def channel_coordinates(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Coordinates along the spectrum axis: name -> (values, attributes with units)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the forward model (stored with datasets)."""
