"""RBS as a :class:`~specinv.techniques.base.Technique`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..physics.rbs import RBSSimulator, Setup
from ..physics.rbs.experiment import setup_from_dict
from .base import PartialSimulation, Technique

AREAL_DENSITY_UNIT = "1e15 atoms/cm2"


class RBSTechnique(Technique):
    """Rutherford backscattering: parameters are areal densities of elements in layers."""

    name = "rbs"

    def __init__(self, setup: Setup, structure: Sequence[Sequence[str]], *, device=None,
                 dtype=None):
        self.setup = setup
        self.simulator = RBSSimulator(setup, structure, device=device, dtype=dtype)
        self.structure = self.simulator.structure
        self.parameter_names = self.simulator.parameter_names
        self.parameter_units = [AREAL_DENSITY_UNIT] * len(self.parameter_names)

    @classmethod
    def from_config(cls, experiment: Mapping[str, Any], structure, **kwargs) -> RBSTechnique:
        """From an ``experiment`` section (the keys of an experiment file without
        ``sample``) and the element names per layer."""
        return cls(setup_from_dict(experiment), structure, **kwargs)

    @property
    def n_channels(self) -> int:
        return self.setup.detector.channels

    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        return self.simulator.simulate(params)

    def partial_simulation(self) -> PartialSimulation | None:
        """Layers as groups: the parameters of layer l change only the particles scattered
        in layers >= l.  None for a single layer."""
        sim = self.simulator
        if sim.n_layers == 1:
            return None
        group = np.repeat(np.arange(sim.n_layers), [len(layer) for layer in self.structure])
        cost = np.array([sim.reaction_share(li) for li in range(sim.n_layers)])
        return PartialSimulation(
            simulate_from=lambda params, first: sim.simulate(params, first_layer=first),
            parameter_group=group, relative_cost=cost)

    def channel_coordinates(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        det = self.setup.detector
        low = det.channel_energy(np.arange(det.channels, dtype=float))
        return {"energy_keV": (low, {"units": "keV",
                                     "long_name": "detected energy at the channel's lower edge"})}

    def describe(self) -> dict[str, Any]:
        return {"technique": self.name, "setup": asdict(self.setup),
                "structure": [list(layer) for layer in self.structure],
                "exit_deg": self.setup.exit_angle_deg}
