"""Dataset generation and preprocessing (library level)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from specinv.data import (
    SPLITS,
    PreprocessSettings,
    SpectrumTransform,
    dataset_config,
    merge_shards,
    read_dataset,
    sample_parameters,
    simulate_shard,
    split_dataset,
    write_dataset,
)
from specinv.data.preprocess import merge_channels, processed_dataset

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def tiny_config(**data) -> dict:
    config = yaml.safe_load(TINY.read_text())
    config["data"].update(data)
    return config


def generate(tmp_path: Path, shards: int, batch_size: int = 16) -> Path:
    cfg = dataset_config(tiny_config(shards=shards, batch_size=batch_size))
    params = sample_parameters(cfg)
    paths = []
    for shard in range(cfg.shards):
        path = tmp_path / f"shard-{shard}.nc"
        write_dataset(simulate_shard(cfg, params, shard, progress=False), path)
        paths.append(path)
    merged = tmp_path / "merged.nc"
    write_dataset(merge_shards(paths, progress=False), merged)
    return merged


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_merged_data_do_not_depend_on_sharding(tmp_path):
    a = generate(tmp_path / "two", shards=2, batch_size=7)
    b = generate(tmp_path / "five", shards=5, batch_size=16)
    assert md5(a) == md5(b)  # byte for byte
    ds = read_dataset(a)
    assert ds["counts"].dtype == np.int32 and ds.sizes["sample"] == 100
    assert ds["counts"].values.sum() > 0
    assert list(ds["param"].values) == ["layer1:W", "layer1:D", "layer2:W", "layer2:D"]
    assert ds["params"].attrs["units"] == "1e15 atoms/cm2"
    assert {"data_hash", "forward_model", "seed", "priors"} <= set(ds.attrs)


def test_parameters_follow_their_priors(tmp_path):
    cfg = dataset_config(tiny_config(sizes={"train": 4000, "validation": 0, "test": 0}))
    p = sample_parameters(cfg)["params"].values
    assert p.shape == (4000, 4)
    assert p[:, 0].min() >= 50 and p[:, 0].max() <= 5000
    assert abs(p[:, 0].mean() - 2525) < 60  # uniform [50, 5000]
    log_w2 = np.log(p[:, 2])  # loguniform [100, 5000]
    assert log_w2.min() >= np.log(100) and log_w2.max() <= np.log(5000)
    assert abs(log_w2.mean() - 0.5 * (np.log(100) + np.log(5000))) < 0.05


def test_noise_is_poisson_around_the_expected_counts():
    cfg = dataset_config(tiny_config(store_expected=True, shards=1))
    ds = simulate_shard(cfg, sample_parameters(cfg), 0, progress=False)
    counts, expected = ds["counts"].values, ds["expected"].values.astype(float)
    big = expected > 100
    z = (counts[big] - expected[big]) / np.sqrt(expected[big])
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1


def test_splits_partition_the_samples(tmp_path):
    merged = read_dataset(generate(tmp_path, shards=3))
    parts = {s: split_dataset(merged, s) for s in SPLITS}
    assert [parts[s].sizes["sample"] for s in SPLITS] == [60, 20, 20]
    together = np.concatenate([parts[s]["sample"].values for s in SPLITS])
    assert np.array_equal(together, np.arange(100))
    assert parts["test"].attrs["split"] == "test"


def test_variance_pruning_drops_exactly_the_flat_bins():
    rng = np.random.default_rng(0)
    n = 500
    counts = np.zeros((n, 140), dtype=np.int32)
    counts[:, 100:112] = rng.poisson(50.0, (n, 12))  # pure Poisson around 50
    counts[:, 112:124] = rng.poisson(rng.uniform(10, 400, (n, 1)), (n, 12))  # varying
    counts[:, 124:128] = 7  # constant
    targets = rng.uniform(0, 1, (n, 2))
    t = SpectrumTransform.fit(
        counts, targets, ["a", "b"], PreprocessSettings(first_channel=100, merge=4, sigmas=3.0)
    )
    merged = merge_channels(counts, 100, 4)
    expected = np.nonzero(merged.std(axis=0) > 3.0 * np.sqrt(merged.mean(axis=0)))[0]
    assert np.array_equal(t.kept_bins, expected)
    assert np.array_equal(t.kept_bins, [3, 4, 5])  # only the varying block
    assert np.array_equal(t.bin_channels(), [112, 116, 120])


def test_transform_round_trips_bit_for_bit(tmp_path):
    merged = read_dataset(generate(tmp_path, shards=2))
    train, test = split_dataset(merged, "train"), split_dataset(merged, "test")
    t = SpectrumTransform.fit(
        train["counts"].values,
        train["params"].values,
        list(train["param"].values),
        PreprocessSettings(),
    )
    t.save(tmp_path / "transform.json")
    loaded = SpectrumTransform.load(tmp_path / "transform.json")
    write_dataset(processed_dataset(test, t), tmp_path / "test.nc")
    stored = read_dataset(tmp_path / "test.nc")
    raw = read_dataset(tmp_path / "merged.nc")
    # one raw spectrum through the saved transform = its stored preprocessed vector
    for k in (0, 7, 19):
        i = int(stored["sample"][k])
        x = loaded.features(raw["counts"].sel(sample=i).values)
        assert x.dtype == np.float32
        assert np.array_equal(x, stored["x"].values[k])
    # targets scale to [0, 1] on the training split and back
    y = loaded.scale_targets(train["params"].values)
    assert y.min() == 0.0 and y.max() == 1.0
    assert np.allclose(loaded.unscale_targets(y), train["params"].values, rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((2, 1000), 1.0), "expected 1100 channels"),
        (np.where(np.eye(2, 1100) > 0, np.nan, 1.0), "non-finite count at spectrum 0, channel 0"),
        (-np.eye(2, 1100), "negative count"),
    ],
)
def test_transform_rejects_bad_spectra(tmp_path, bad, message):
    merged = read_dataset(generate(tmp_path, shards=1))
    t = SpectrumTransform.fit(
        merged["counts"].values, merged["params"].values, list(merged["param"].values)
    )
    with pytest.raises(ValueError, match=message):
        t.features(bad)


def test_test_split_does_not_change_with_the_training_size():
    small = dataset_config(tiny_config(sizes={"train": 10, "validation": 5, "test": 8}, shards=1))
    large = dataset_config(tiny_config(sizes={"train": 40, "validation": 5, "test": 8}, shards=1))
    a = simulate_shard(small, sample_parameters(small), 0, progress=False)
    b = simulate_shard(large, sample_parameters(large), 0, progress=False)
    for split in ("validation", "test"):
        pa, pb = split_dataset(a, split), split_dataset(b, split)
        assert np.array_equal(pa["params"].values, pb["params"].values)
        assert np.array_equal(pa["counts"].values, pb["counts"].values)
    # the first training spectra are shared too (training-size sweeps use prefixes)
    ta, tb = split_dataset(a, "train"), split_dataset(b, "train")
    assert np.array_equal(ta["counts"].values, tb["counts"].values[:10])


@pytest.mark.parametrize(
    ("configfile", "data_hash"),
    [
        ("config/config.yaml", "73eac8a74d837a69"),
        ("tests/data/tiny.yaml", "3419dad8a87219c5"),
        ("config/paper/rbs_A.yaml", "120e59f73d6f2c00"),
        # B and C re-chosen by the experiment design of issue 19 (4He 1700 keV, thin layers)
        ("config/paper/rbs_B.yaml", "69a7f1eb940ce758"),
        ("config/paper/rbs_C.yaml", "a6f2aec998612342"),
        # XRD (issue 16), pinned when the technique was added
        ("config/paper/xrd_CNN1.yaml", "2d17cffa5fe44ebe"),
        ("config/paper/xrd_CNN2.yaml", "a7745999acf17766"),
        ("config/paper/xrd_CNN3.yaml", "bd1bd416149aaae0"),
    ],
)
def test_the_data_of_a_configuration_never_change_silently(configfile, data_hash):
    """The hash of everything the simulated data depend on, pinned to the values of the
    datasets made before the technique seam (commit e97c152; XRD: when it was added; B and
    C: when issue 19 chose their setups): a new
    default or a change of
    the sampling would rerun every user's data, so it must be a decision, not an accident."""
    root = Path(__file__).resolve().parents[1]
    assert dataset_config(yaml.safe_load((root / configfile).read_text())).data_hash() == (
        data_hash
    )
