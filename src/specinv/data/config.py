"""Typed view of a workflow configuration's data sections, with physics-aware checks.

The Snakemake workflow first validates the configuration against
``workflow/schemas/config.schema.yaml`` (types, required keys, defaults); then
:func:`dataset_config` checks what a schema cannot (element names, prior bounds, the
experiment itself) and raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..physics.rbs.experiment import ExperimentError, setup_from_dict
from ..physics.rbs.isotopes import UnknownSpeciesError, species

SPLITS = ("train", "validation", "test")
LAWS = ("uniform", "loguniform", "fixed")


class ConfigError(ValueError):
    """A bad value in a workflow configuration (the message names the key)."""


@dataclass(frozen=True)
class Prior:
    """Sampling law of one parameter: ``uniform`` or ``loguniform`` on [low, high], or
    ``fixed`` at ``low``."""

    law: str
    low: float
    high: float

    def transform(self, u: np.ndarray) -> np.ndarray:
        """Values of uniform [0, 1) numbers ``u`` under this law (inverse CDF)."""
        if self.law == "uniform":
            return self.low + (self.high - self.low) * u
        if self.law == "loguniform":
            return np.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u)
        return np.full_like(u, self.low)


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that defines a simulated dataset.

    Attributes:
        name: dataset name (results go to ``results/<name>/``).
        technique: "rbs".
        experiment: the experiment section (setup without the sample), as validated.
        structure: element names per layer (order of the parameters).
        priors: one sampling law per parameter.
        sizes: number of spectra per split (train, validation, test).
        seed: base seed; a spectrum's parameters and noise depend only on (seed, index).
        shards: number of simulation jobs.
        batch_size: spectra per simulator call.
        device, dtype: where and in which precision to simulate.
        noise: "poisson" or "none".
        store_expected: also keep the noise-free spectra.
    """

    name: str
    technique: str
    experiment: Mapping[str, Any]
    structure: tuple[tuple[str, ...], ...]
    priors: tuple[Prior, ...]
    sizes: Mapping[str, int]
    seed: int
    shards: int
    batch_size: int
    device: str
    dtype: str
    noise: str
    store_expected: bool

    @property
    def n_samples(self) -> int:
        return sum(self.sizes[s] for s in SPLITS)

    def split_position(self) -> tuple[np.ndarray, np.ndarray]:
        """(split code, index within the split) of every sample index."""
        codes = self.split_of()
        within = np.concatenate([np.arange(self.sizes[s]) for s in SPLITS])
        return codes, within

    def split_of(self) -> np.ndarray:
        """Split code (index into SPLITS: train, validation, test) of every sample index."""
        return np.repeat(np.arange(len(SPLITS), dtype=np.int8), [self.sizes[s] for s in SPLITS])

    def shard_range(self, shard: int) -> tuple[int, int]:
        """[start, stop) of the sample indices simulated by ``shard``."""
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} outside 0..{self.shards - 1}")
        n = self.n_samples
        return shard * n // self.shards, (shard + 1) * n // self.shards

    def split_range(self, split: str) -> tuple[int, int]:
        start = sum(self.sizes[s] for s in SPLITS[:SPLITS.index(split)])
        return start, start + self.sizes[split]

    def data_hash(self) -> str:
        """Hash of everything the simulated data depend on (not of shards, batch size or
        device, which do not change them)."""
        key = {"technique": self.technique, "experiment": self.experiment,
               "structure": self.structure, "priors": [p.__dict__ for p in self.priors],
               "sizes": dict(self.sizes), "seed": self.seed, "dtype": self.dtype,
               "noise": self.noise, "store_expected": self.store_expected}
        text = json.dumps(key, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def build_technique(self):
        import torch

        from ..techniques import build_technique

        return build_technique(self.technique, self.experiment, self.structure,
                               device=self.device, dtype=getattr(torch, self.dtype))


def _prior(spec: Any, default: Prior, key: str) -> Prior:
    if spec is None:
        return default
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{key}: expected a prior {{law, low, high}} or null, got {spec!r}")
    law = spec.get("law", default.law)
    if law not in LAWS:
        raise ConfigError(f"{key}.law: expected one of {', '.join(LAWS)}, got {law!r}")
    low = spec.get("low", default.low)
    high = spec.get("high", low if law == "fixed" else default.high)
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ConfigError(f"{key}.{name}: expected a finite number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}.{name}: expected >= 0 (an areal density), got {value}")
    if low > high:
        raise ConfigError(f"{key}: lower bound low={low} is above the upper bound high={high}")
    if law == "loguniform" and low <= 0:
        raise ConfigError(f"{key}.low: a loguniform prior needs low > 0, got {low}")
    return Prior(law=law, low=float(low), high=float(high))


def dataset_config(config: Mapping[str, Any]) -> DatasetConfig:
    """Check and type the data sections of a (schema-validated) workflow configuration.

    Raises:
        ConfigError: naming the key and what was expected.
    """
    try:
        experiment = config["experiment"]
        setup_from_dict(experiment)
    except KeyError as exc:
        raise ConfigError(f"config: missing key {exc.args[0]!r}") from None
    except ExperimentError as exc:
        raise ConfigError(f"experiment: {exc}") from None
    sample = config.get("sample", {})
    default = _prior(sample.get("prior", {}), Prior("uniform", 50.0, 5000.0), "sample.prior")
    layers = sample.get("layers")
    if not isinstance(layers, Sequence) or isinstance(layers, str) or not layers:
        raise ConfigError(f"sample.layers: expected a non-empty list of layers, got {layers!r}")
    structure, priors = [], []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or not layer:
            raise ConfigError(f"sample.layers[{i}]: expected a mapping of element -> prior "
                              f"(or null for sample.prior), got {layer!r}")
        for name, spec in layer.items():
            try:
                species(str(name), f"sample.layers[{i}].{name}")
            except UnknownSpeciesError as exc:
                raise ConfigError(str(exc)) from None
            priors.append(_prior(spec, default, f"sample.layers[{i}].{name}"))
        structure.append(tuple(str(n) for n in layer))
    data = config.get("data", {})
    sizes = {s: int(data.get("sizes", {}).get(s, 0)) for s in SPLITS}
    for s, n in sizes.items():
        if n < 0:
            raise ConfigError(f"data.sizes.{s}: expected a number of spectra >= 0, got {n}")
    if sizes["train"] == 0:
        raise ConfigError("data.sizes.train: expected at least one training spectrum")
    cfg = DatasetConfig(
        name=str(config.get("name", "dataset")), technique=config.get("technique", "rbs"),
        experiment=experiment, structure=tuple(structure), priors=tuple(priors), sizes=sizes,
        seed=int(data.get("seed", 0)), shards=int(data.get("shards", 1)),
        batch_size=int(data.get("batch_size", 1000)), device=str(data.get("device", "cpu")),
        dtype=str(data.get("dtype", "float64")), noise=str(data.get("noise", "poisson")),
        store_expected=bool(data.get("store_expected", False)))
    if not 1 <= cfg.shards <= cfg.n_samples:
        raise ConfigError(f"data.shards: expected 1..{cfg.n_samples} (the number of spectra), "
                          f"got {cfg.shards}")
    return cfg
