"""Simulated datasets: configuration, generation in shards, storage and preprocessing."""

from ..config import ConfigError
from .config import SPLITS, DatasetConfig, dataset_config
from .generate import (
    add_noise,
    expected_spectra,
    merge_shards,
    sample_parameters,
    simulate_shard,
    split_dataset,
)
from .io import read_dataset, write_dataset
from .preprocess import PreprocessSettings, SpectrumTransform, preprocess_settings

__all__ = [
    "SPLITS",
    "ConfigError",
    "DatasetConfig",
    "PreprocessSettings",
    "SpectrumTransform",
    "add_noise",
    "dataset_config",
    "expected_spectra",
    "merge_shards",
    "preprocess_settings",
    "read_dataset",
    "sample_parameters",
    "simulate_shard",
    "split_dataset",
    "write_dataset",
]
