"""Typed view of the data part of a workflow configuration.

:func:`dataset_config` validates a configuration (:func:`specinv.config.validate_config`:
the generic schema, the technique's schema fragment, then the technique's own checks) and
returns a :class:`DatasetConfig`, which knows nothing of any technique beyond the
:class:`~specinv.techniques.Technique` interface.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..config import ConfigError, validate_config

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that defines a simulated dataset.

    Attributes:
        name: dataset name (results go to ``results/<name>/``).
        technique: the technique's registry name.
        section: the technique's configuration section, as validated.
        sizes: number of spectra per split (train, validation, test).
        seed: base seed; a spectrum's parameters and noise depend only on (seed, index).
        shards: number of simulation jobs.
        batch_size: spectra per simulator call.
        device, dtype: where and in which precision to simulate.
        noise: the technique's noise model ("poisson") or "none".
        store_expected: also keep the noise-free spectra.
    """

    name: str
    technique: str
    section: Mapping[str, Any]
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
        start = sum(self.sizes[s] for s in SPLITS[: SPLITS.index(split)])
        return start, start + self.sizes[split]

    @cached_property
    def technique_instance(self):
        """The technique on the configured device and dtype (built once)."""
        return self.build_technique()

    def data_hash(self) -> str:
        """Hash of everything the simulated data depend on (not of shards, batch size or
        device, which do not change them)."""
        key = {
            "technique": self.technique,
            **self.technique_instance.identity(),
            "sizes": dict(self.sizes),
            "seed": self.seed,
            "dtype": self.dtype,
            "noise": self.noise,
            "store_expected": self.store_expected,
        }
        text = json.dumps(key, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def build_technique(self, device: str | None = None, dtype: str | None = None):
        """A new instance of the technique (on ``device`` in ``dtype``: by default those of
        the data generation)."""
        import torch

        from ..techniques import technique_class

        cls = technique_class(self.technique)
        try:
            return cls.from_config(
                self.section,
                device=device or self.device,
                dtype=getattr(torch, dtype or self.dtype),
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.technique}.{exc}") from None


def dataset_config(config: Mapping[str, Any]) -> DatasetConfig:
    """Check and type the data sections of a workflow configuration (validated, with the
    schemas' defaults; the technique checks its own section).

    Raises:
        ConfigError: naming the key and what was expected.
    """
    config = validate_config(config)
    data = config["data"]
    sizes = {s: int(data["sizes"][s]) for s in SPLITS}
    cfg = DatasetConfig(
        name=str(config["name"]),
        technique=config["technique"],
        section=config[config["technique"]],
        sizes=sizes,
        seed=int(data["seed"]),
        shards=int(data["shards"]),
        batch_size=int(data["batch_size"]),
        device=str(data["device"]),
        dtype=str(data["dtype"]),
        noise=str(data["noise"]),
        store_expected=bool(data["store_expected"]),
    )
    if not 1 <= cfg.shards <= cfg.n_samples:
        raise ConfigError(
            f"data.shards: expected 1..{cfg.n_samples} (the number of spectra), got {cfg.shards}"
        )
    _ = cfg.technique_instance  # the technique's own checks, before any work starts
    return cfg
