"""EELS as a :class:`~specinv.techniques.base.Technique` (Annys, Jannis & Verbeeck 2023).

A multi-label task: which of the 80 elements Be … Bi a core-loss spectrum shows.  The
parameters of a spectrum are the amounts of the 80 elements (atoms per formula unit, 0
where absent) and the conditions of :data:`~specinv.physics.eels.spectrum.CONDITIONS`; the
targets are the labels: 1 where at least one of the element's edge sets lies in the
spectrum's range (:meth:`EELSSimulator.labels`).

Sampling follows the paper's Methods: every spectrum has a *query* element drawn uniformly
(each element equally often), one of its edge sets in range, and a detector range about that
set (start in [75, onset − 10] eV, end in [onset + 25, 3272] eV, whole eV); the other
elements of the sample are drawn uniformly (the paper draws samples from The Materials
Project, which cannot be reached here) and are labelled only where one of their edge sets
falls in the range.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from ...config.errors import ConfigError
from ...config.schema import load_schema
from ...physics.eels.edges import ELEMENT_Z
from ...physics.eels.spectrum import (
    CONDITIONS,
    MARGIN_AFTER_EV,
    MARGIN_BEFORE_EV,
    EELSSimulator,
    SimulatorSettings,
)
from ..base import Axis, Technique

#: conditions drawn as whole numbers
INTEGER_CONDITIONS = frozenset(
    {
        "plasmon_eV",
        "plasmon_fwhm_eV",
        "n_plasmons",
        "fine_structure_window_eV",
        "fine_structure_degree",
        "instrumental_shift_eV",
    }
)
#: conditions drawn log-uniformly
LOG_CONDITIONS = frozenset({"fine_structure_scale"})
#: conditions drawn from [low, high] of the section's ``conditions`` (in CONDITIONS order)
RANGED = tuple(
    n
    for n, _ in CONDITIONS
    if n not in {"beam_energy_kV", "start_eV", "end_eV", "log10_background", "seed"}
)
_N_CHANNELS = 3072
_SEEDS = 2**31 - 1


def _whole(low: float, high: float, u: np.ndarray) -> np.ndarray:
    """Whole numbers uniform in [low, high] from uniforms ``u``."""
    lo, hi = int(np.ceil(low)), int(np.floor(high))
    return np.minimum(lo + np.floor(u * (hi - lo + 1)), hi)


class EELSTechnique(Technique):
    """Core-loss EELS: element identification in spectra of 0–3071 eV."""

    name: ClassVar[str] = "eels"
    task: ClassVar[str] = "multilabel"
    config_schema: ClassVar[dict] = load_schema(__package__, "eels.schema.yaml")
    #: the paper's input: every channel, each spectrum divided by its maximum
    preprocessing_defaults: ClassVar[dict] = {
        "first_channel": 0,
        "merge": 1,
        "log": False,
        "normalize": "max",
        "prune": "none",
        "savgol": {"window": 0, "polyorder": 2},
    }

    def __init__(self, section: Mapping[str, Any], *, device=None, dtype=None):
        self.section = dict(section)
        self.ranges = {n: dict(section["conditions"][n]) for n in RANGED}
        self.ranges["detector_range_eV"] = dict(section["conditions"]["detector_range_eV"])
        for key, r in {
            **self.ranges,
            "elements_per_spectrum": section["elements_per_spectrum"],
            "amount": section["amount"],
        }.items():
            where = key if key in ("elements_per_spectrum", "amount") else f"conditions.{key}"
            if r["high"] < r["low"]:
                raise ConfigError(
                    f"{where}: expected high >= low, got low {r['low']}, high {r['high']}"
                )
        for key in ("elements_per_spectrum", "amount"):
            if section[key]["low"] < 1:
                raise ConfigError(f"{key}.low: expected >= 1, got {section[key]['low']}")
        if section["elements_per_spectrum"]["high"] > len(ELEMENT_Z):
            raise ConfigError(
                f"elements_per_spectrum.high: expected <= {len(ELEMENT_Z)}, got "
                f"{section['elements_per_spectrum']['high']}"
            )
        positive = ("convergence_mrad", "collection_mrad", "zlp_fwhm_eV", "plasmon_eV")
        positive += ("plasmon_fwhm_eV", "fine_structure_scale", "atomic_diameter_pm")
        for key in positive:
            if self.ranges[key]["low"] <= 0:
                raise ConfigError(
                    f"conditions.{key}.low: expected > 0, got {self.ranges[key]['low']}"
                )
        detector = self.ranges["detector_range_eV"]
        if detector["low"] < 1 or detector["high"] < detector["low"] + 35:
            raise ConfigError(
                f"conditions.detector_range_eV: expected 1 <= low and high >= low + 35, got "
                f"{detector}"
            )
        self.simulator_settings = SimulatorSettings(
            n_channels=_N_CHANNELS, chemical_shift_eV=int(section["chemical_shift_eV"])
        )
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float64
        symbols = self.simulator.symbols
        self.parameter_names = [f"amount_{s}" for s in symbols] + [n for n, _ in CONDITIONS]
        self.parameter_units = ["1"] * len(symbols) + [u for _, u in CONDITIONS]

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, device=None, dtype=None) -> EELSTechnique:
        return cls(section, device=device, dtype=dtype)

    @cached_property
    def simulator(self) -> EELSSimulator:
        return EELSSimulator(self.simulator_settings, dtype=self.dtype)

    def identity(self) -> dict[str, Any]:
        return dict(self.section)

    def describe(self) -> dict[str, Any]:
        return {"technique": self.name, **self.identity(), "parameters": self.parameter_names}

    def prior_description(self) -> dict[str, Any]:
        return {
            "sampling": "a query element per spectrum, uniform; others uniform; the detector "
            "range about one of the query element's edge sets "
            "(specinv.techniques.eels.technique)",
            **{k: self.section[k] for k in ("elements_per_spectrum", "amount")},
            "conditions": self.ranges,
        }

    # ------------------------------------------------------------------ parameters
    @property
    def _max_elements(self) -> int:
        return int(self.section["elements_per_spectrum"]["high"])

    @property
    def n_uniforms(self) -> int:
        # query, count, the others, amounts, the query's set, start, end, beam, background,
        # the ranged conditions, seed
        k = self._max_elements
        return 2 + (k - 1) + k + 3 + 2 + len(RANGED) + 1

    def sample(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        n, k = u.shape[0], self._max_elements
        n_el = len(ELEMENT_Z)
        sim = self.simulator
        params = np.zeros((n, len(self.parameter_names)))
        query = np.minimum((u[:, 0] * n_el).astype(int), n_el - 1)
        r = self.section["elements_per_spectrum"]
        count = _whole(r["low"], r["high"], u[:, 1]).astype(int)
        others = u[:, 2 : 2 + k - 1]
        amounts = _whole(
            self.section["amount"]["low"], self.section["amount"]["high"], u[:, k + 1 : 2 * k + 1]
        )
        col = 2 * k + 1
        set_u, start_u, end_u = u[:, col], u[:, col + 1], u[:, col + 2]
        beam_u, bg_u = u[:, col + 3], u[:, col + 4]
        ranged = u[:, col + 5 : col + 5 + len(RANGED)]
        seed_u = u[:, col + 5 + len(RANGED)]
        detector = self.ranges["detector_range_eV"]
        for j in range(n):
            chosen = [int(query[j])]
            remaining = [e for e in range(n_el) if e != query[j]]
            for i in range(count[j] - 1):
                chosen.append(
                    remaining.pop(min(int(others[j, i] * len(remaining)), len(remaining) - 1))
                )
            params[j, chosen] = amounts[j, : len(chosen)]
            onsets = sim.set_onset[sim.set_element == query[j]]
            onsets = onsets[
                (onsets >= detector["low"] + MARGIN_BEFORE_EV)
                & (onsets <= min(detector["high"], _N_CHANNELS - 1) - MARGIN_AFTER_EV)
            ]
            if onsets.size == 0:  # the ranges exclude every edge of the element
                onsets = sim.set_onset[sim.set_element == query[j]]
            onset = onsets[min(int(set_u[j] * onsets.size), onsets.size - 1)]
            start = _whole(
                detector["low"], max(onset - MARGIN_BEFORE_EV, detector["low"]), start_u[j]
            )
            end = _whole(min(onset + MARGIN_AFTER_EV, detector["high"]), detector["high"], end_u[j])
            params[j, sim.column["start_eV"]] = start
            params[j, sim.column["end_eV"]] = min(end, _N_CHANNELS - 1)
        beams = np.asarray(self.section["beam_energies_kV"], dtype=float)
        backgrounds = np.asarray(self.section["log10_backgrounds"], dtype=float)
        params[:, sim.column["beam_energy_kV"]] = beams[
            np.minimum((beam_u * beams.size).astype(int), beams.size - 1)
        ]
        params[:, sim.column["log10_background"]] = backgrounds[
            np.minimum((bg_u * backgrounds.size).astype(int), backgrounds.size - 1)
        ]
        for i, name in enumerate(RANGED):
            lo, hi = self.ranges[name]["low"], self.ranges[name]["high"]
            if name in INTEGER_CONDITIONS:
                value = _whole(lo, hi, ranged[:, i])
            elif name in LOG_CONDITIONS:
                value = lo * (hi / lo) ** ranged[:, i]
            else:
                value = lo + (hi - lo) * ranged[:, i]
            params[:, sim.column[name]] = value
        params[:, sim.column["seed"]] = np.floor(seed_u * _SEEDS)
        return params

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        n_el = len(ELEMENT_Z)
        low = np.zeros(len(self.parameter_names))
        high = np.zeros(len(self.parameter_names))
        high[:n_el] = self.section["amount"]["high"]
        col = self.simulator.column
        for name in RANGED:
            low[col[name]], high[col[name]] = self.ranges[name]["low"], self.ranges[name]["high"]
        detector = self.ranges["detector_range_eV"]
        for name in ("start_eV", "end_eV"):
            low[col[name]] = detector["low"]
            high[col[name]] = min(detector["high"], _N_CHANNELS - 1)
        for name, key in (
            ("beam_energy_kV", "beam_energies_kV"),
            ("log10_background", "log10_backgrounds"),
        ):
            low[col[name]], high[col[name]] = min(self.section[key]), max(self.section[key])
        high[col["seed"]] = _SEEDS
        return low, high

    # ------------------------------------------------------------------ targets
    @property
    def target_names(self) -> list[str]:
        return list(self.simulator.symbols)

    def targets(self, params: np.ndarray) -> np.ndarray:
        """1 where one of the element's edge sets lies in the spectrum's range."""
        return self.simulator.labels(np.atleast_2d(params))

    # ------------------------------------------------------------------ forward model
    @property
    def n_channels(self) -> int:
        return _N_CHANNELS

    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        """Expected counts [B, 3072] (not differentiable: the fine structures are drawn)."""
        single = np.ndim(params) == 1
        p = np.atleast_2d(
            params.detach().cpu().numpy() if torch.is_tensor(params) else np.asarray(params)
        )
        counts = self.simulator.simulate(p).to(device=self.device)
        return counts[0] if single else counts

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_cli(cls, subparsers) -> None:
        from .cli import add_cli

        add_cli(subparsers)

    @classmethod
    def experiment_loader(cls):
        from .cli import load_eels_experiment

        return load_eels_experiment

    def axis(self) -> Axis:
        return Axis(
            "energy_loss_eV",
            np.arange(_N_CHANNELS, dtype=float),
            "energy loss (eV)",
            {"units": "eV", "long_name": "energy loss"},
        )
