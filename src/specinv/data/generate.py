"""Simulated datasets: parameter sampling, sharded simulation with noise, merging, splits.

Reproducibility: the parameters of the j-th spectrum of a split are row j of uniform
numbers drawn, row by row, from a generator seeded by (seed, PARAMETER_STREAM, split), and
its noise comes from a generator seeded by (seed, NOISE_STREAM, split, j).  So a spectrum
depends only on the seed, its split and its place in the split (a larger training split
leaves the test split unchanged), and since the simulator's result for a sample does not
depend on the other samples in its batch, the merged dataset is identical, byte for byte,
whatever the number of shards or the batch size.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from .. import __version__
from .config import SPLITS, DatasetConfig
from .io import read_dataset

PARAMETER_STREAM = 1
NOISE_STREAM = 2


SPLIT_ATTRS = {
    "long_name": "split of the sample",
    "flag_values": np.arange(len(SPLITS), dtype=np.int8),
    "flag_meanings": " ".join(SPLITS),
}


def _attrs(cfg: DatasetConfig, technique) -> dict:
    attrs = {
        "title": f"specinv simulated {cfg.technique} spectra: {cfg.name}",
        "specinv_version": __version__,
        "technique": cfg.technique,
        "data_hash": cfg.data_hash(),
        "seed": cfg.seed,
        "noise": cfg.noise,
        "forward_model": json.dumps(technique.describe(), default=str),
    }
    prior = technique.prior_description()
    if prior is not None:
        attrs["priors"] = json.dumps(prior)
    return attrs


def sample_parameters(cfg: DatasetConfig) -> xr.Dataset:
    """Parameters of every spectrum of every split: ``params`` [sample, param] (and, for a
    multi-label technique, its ``labels`` [sample, label])."""
    technique = cfg.technique_instance
    blocks = []
    for code, split in enumerate(SPLITS):
        rng = np.random.default_rng([cfg.seed, PARAMETER_STREAM, code])
        u = rng.random((cfg.sizes[split], technique.n_uniforms))  # row-major: row j, then j+1
        blocks.append(
            np.asarray(technique.sample(u), dtype=np.float64).reshape(
                len(u), technique.n_parameters
            )
        )
    values = np.concatenate(blocks)
    data = {"params": (("sample", "param"), values, technique.parameter_attrs())}
    coords = {
        "sample": np.arange(cfg.n_samples),
        "param": technique.parameter_names,
        "split": ("sample", cfg.split_of(), SPLIT_ATTRS),
    }
    if technique.task == "multilabel":
        data["labels"] = (
            ("sample", "label"),
            technique.targets(values).astype(np.int8),
            {"long_name": "1 where the label is present, else 0"},
        )
        coords["label"] = technique.target_names
    if len(set(technique.parameter_units)) > 1:
        coords["param_units"] = ("param", list(technique.parameter_units))
    return xr.Dataset(data, coords=coords, attrs=_attrs(cfg, technique))


def add_noise(
    technique, expected: np.ndarray, seed: int, keys: Sequence[Sequence[int]], noise: str
) -> np.ndarray:
    """Counts [n, C] (int32) of expected spectra [n, C] under the technique's noise model.

    Spectrum k gets its noise from its own generator, seeded by (seed, NOISE_STREAM,
    *keys[k]) — keys are (split code, index in the split) in datasets (``noise="none"``:
    the expected counts rounded to integers).
    """
    out = np.empty(expected.shape, dtype=np.int32)
    for row, key in enumerate(keys):
        rng = np.random.default_rng([seed, NOISE_STREAM, *(int(k) for k in key)])
        out[row] = technique.add_noise(expected[row], rng, noise)
    return out


def _simulated_batches(technique, values: np.ndarray, batch_size: int, desc: str, progress: bool):
    """(start, stop, expected spectra [stop − start, C] float64) for consecutive batches of
    the parameters ``values`` [n, D], with a progress bar."""
    n = len(values)
    with tqdm(
        total=n, desc=desc, unit="spectra", file=sys.stderr, mininterval=2.0, disable=not progress
    ) as bar:
        for b0 in range(0, n, batch_size):
            b1 = min(n, b0 + batch_size)
            yield b0, b1, technique.simulate(torch.as_tensor(values[b0:b1])).double().cpu().numpy()
            bar.update(b1 - b0)


def expected_spectra(
    technique, params: np.ndarray, batch_size: int, progress: bool = True
) -> np.ndarray:
    """Noise-free spectra [n, C] (float64) of parameters [n, D], simulated in batches."""
    params = np.asarray(params)
    out = np.empty((len(params), technique.n_channels))
    for b0, b1, expected in _simulated_batches(
        technique, params, batch_size, "simulating noise-free spectra", progress
    ):
        out[b0:b1] = expected
    return out


def simulate_shard(
    cfg: DatasetConfig, params: xr.Dataset, shard: int, progress: bool = True
) -> xr.Dataset:
    """Simulate the spectra of one shard (a contiguous range of sample indices)."""
    technique = cfg.technique_instance
    start, stop = cfg.shard_range(shard)
    values = params["params"].values[start:stop]
    n, channels = stop - start, technique.n_channels
    counts = np.empty((n, channels), dtype=np.int32)
    expected_all = np.empty((n, channels), dtype=np.float32) if cfg.store_expected else None
    codes, within = cfg.split_position()
    keys = np.stack([codes, within], 1)[start:stop]
    for b0, b1, expected in _simulated_batches(
        technique, values, cfg.batch_size, f"shard {shard + 1}/{cfg.shards}: simulating", progress
    ):
        counts[b0:b1] = add_noise(technique, expected, cfg.seed, keys[b0:b1], cfg.noise)
        if expected_all is not None:
            expected_all[b0:b1] = expected
    part = params.isel(sample=slice(start, stop))
    coords = {
        "sample": np.arange(start, stop),
        "param": technique.parameter_names,
        "split": ("sample", cfg.split_of()[start:stop], SPLIT_ATTRS),
        **{name: part[name].variable for name in ("label", "param_units") if name in part.coords},
        technique.channel_dim: np.arange(channels),
    }
    for name, (vals, attrs) in technique.channel_coordinates().items():
        coords[name] = (technique.channel_dim, vals, attrs)
    data = {
        "counts": (
            ("sample", technique.channel_dim),
            counts,
            {"long_name": "counts per channel (with noise)", "units": "1"},
        ),
        **{name: var.variable for name, var in part.data_vars.items()},
    }
    if expected_all is not None:
        data["expected"] = (
            ("sample", technique.channel_dim),
            expected_all,
            {"long_name": "expected counts per channel (noise-free)"},
        )
    return xr.Dataset(data, coords=coords, attrs=params.attrs)


class CorruptShardError(OSError):
    """A shard file that cannot be read (truncated by a crash or a full disk, or damaged)."""


def _read_shard(path: str | Path, remove_corrupt: bool) -> xr.Dataset:
    try:
        return read_dataset(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) or not remove_corrupt:
            raise
        Path(path).unlink(missing_ok=True)
        raise CorruptShardError(
            f"{path}: not a readable dataset (truncated or damaged: {exc.__cause__ or exc}); "
            "the file was removed: run the same command again to simulate this shard anew "
            "(its spectra depend only on the seed and their indices, so the data are the same)"
        ) from None


def merge_shards(
    shards: Sequence[xr.Dataset | str | Path],
    progress: bool = True,
    remove_corrupt: bool = False,
) -> xr.Dataset:
    """Concatenate shards (datasets or files) along ``sample``; every index must appear once.

    Args:
        remove_corrupt: delete a shard file that cannot be read before raising
            :class:`CorruptShardError`, so that rerunning the workflow simulates it again.
    """
    parts = [
        _read_shard(s, remove_corrupt) if isinstance(s, (str, Path)) else s
        for s in tqdm(
            shards,
            desc="reading shards",
            unit="shard",
            file=sys.stderr,
            mininterval=2.0,
            disable=not progress,
        )
    ]
    parts = sorted(parts, key=lambda ds: int(ds["sample"][0]) if ds.sizes["sample"] else 0)
    merged = xr.concat(
        parts,
        dim="sample",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="override",
    )
    index = merged["sample"].values
    if not np.array_equal(index, np.arange(len(index))):
        raise ValueError("merge: the shards do not cover the sample indices 0..N-1 exactly once")
    hashes = {ds.attrs.get("data_hash") for ds in parts}
    if len(hashes) != 1:
        raise ValueError(f"merge: shards come from different configurations ({sorted(hashes)})")
    return merged


def split_dataset(merged: xr.Dataset, split: str) -> xr.Dataset:
    """The spectra of one split (train, validation or test)."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    out = merged.isel(sample=np.nonzero(merged["split"].values == SPLITS.index(split))[0])
    out.attrs = {**merged.attrs, "split": split}
    return out
