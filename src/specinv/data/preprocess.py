"""Preprocessing of spectra for the networks: fitted on the training split only, saved, and
re-applied unchanged to validation, test and any new (e.g. measured) spectrum.

Steps (DESIGN.md §4, following Muzakka et al. 2024):

1. region of interest: drop the first ``first_channel`` channels (little information);
2. merge every ``merge`` adjacent channels (sums of counts);
3. Savitzky–Golay smoothing of the merged spectrum (window and polynomial order in
   merged bins; window 0 switches it off);
4. variance pruning: keep only the merged bins whose standard deviation across the
   training spectra exceeds ``sigmas``·sqrt(mean), i.e. that vary by more than Poisson
   scatter around a constant (bins that are always zero go too);
5. standard scaling of every kept bin (training mean and standard deviation), float32;
6. targets: min–max scaling of every parameter to [0, 1] (training minimum and maximum).

The pruning decision (4) is made on the merged raw counts; the features are taken from the
smoothed spectrum, so smoothing never mixes bins across a pruned gap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from ..fileio import atomic_path


@dataclass(frozen=True)
class PreprocessSettings:
    """Settings of the preprocessing (config section ``preprocessing``)."""

    first_channel: int = 100
    merge: int = 4
    sigmas: float = 3.0
    savgol_window: int = 7
    savgol_polyorder: int = 2

    def __post_init__(self):
        if self.first_channel < 0:
            raise ValueError(
                f"preprocessing.first_channel: expected >= 0, got {self.first_channel}")
        if self.merge < 1:
            raise ValueError(f"preprocessing.merge: expected >= 1, got {self.merge}")
        if self.savgol_window and (self.savgol_window % 2 == 0
                                   or self.savgol_window <= self.savgol_polyorder):
            raise ValueError("preprocessing.savgol.window: expected 0 (off) or an odd number "
                             f"above polyorder {self.savgol_polyorder}, got {self.savgol_window}")


def preprocess_settings(config) -> PreprocessSettings:
    """Settings from a workflow configuration's ``preprocessing`` section (ValueError naming
    the key when one is out of range)."""
    p = config.get("preprocessing", {})
    savgol = p.get("savgol", {})
    return PreprocessSettings(first_channel=int(p.get("first_channel", 100)),
                              merge=int(p.get("merge", 4)), sigmas=float(p.get("sigmas", 3.0)),
                              savgol_window=int(savgol.get("window", 7)),
                              savgol_polyorder=int(savgol.get("polyorder", 2)))


@dataclass
class SpectrumTransform:
    """A fitted preprocessing: raw counts [N, C] -> features [N, F], targets <-> [0, 1]."""

    settings: PreprocessSettings
    n_channels: int
    kept_bins: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    parameter_names: list[str]
    target_min: np.ndarray
    target_max: np.ndarray
    fit_info: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, counts: np.ndarray, targets: np.ndarray, parameter_names: list[str],
            settings: PreprocessSettings = PreprocessSettings()) -> SpectrumTransform:
        """Fit on training spectra ``counts`` [N, C] and their parameters ``targets`` [N, D]."""
        counts = np.asarray(counts)
        check_counts(counts)
        merged = merge_channels(counts, settings.first_channel, settings.merge)
        kept = np.nonzero(variance_keep_mask(merged, settings.sigmas))[0]
        if kept.size == 0:
            raise ValueError("preprocessing: every bin was pruned (no bin varies more than "
                             f"{settings.sigmas} sqrt(mean) across the training spectra)")
        features = _smooth(merged, settings)[:, kept]
        std = features.std(axis=0)
        targets = np.asarray(targets, dtype=np.float64)
        t_min, t_max = targets.min(axis=0), targets.max(axis=0)
        return cls(settings=settings, n_channels=counts.shape[1], kept_bins=kept,
                   feature_mean=features.mean(axis=0), feature_std=np.where(std > 0, std, 1.0),
                   parameter_names=list(parameter_names), target_min=t_min,
                   target_max=np.where(t_max > t_min, t_max, t_min + 1.0),
                   fit_info={"n_train": int(counts.shape[0]), "n_bins": int(merged.shape[1])})

    # ------------------------------------------------------------------ applying
    def features(self, counts: np.ndarray) -> np.ndarray:
        """Preprocessed float32 features [N, F] of raw counts [N, C] (or [C] -> [F])."""
        counts = np.asarray(counts)
        single = counts.ndim == 1
        counts = np.atleast_2d(counts)
        check_counts(counts, expected_channels=self.n_channels)
        merged = merge_channels(counts, self.settings.first_channel, self.settings.merge)
        x = (_smooth(merged, self.settings)[:, self.kept_bins] - self.feature_mean) / (
            self.feature_std)
        x = x.astype(np.float32)
        return x[0] if single else x

    def scale_targets(self, y: np.ndarray) -> np.ndarray:
        """Physical parameters -> [0, 1] (float32)."""
        return ((np.asarray(y) - self.target_min) / (self.target_max - self.target_min)).astype(
            np.float32)

    def unscale_targets(self, z: np.ndarray) -> np.ndarray:
        """[0, 1] -> physical parameters (float64)."""
        return self.target_min + np.asarray(z, dtype=np.float64) * (self.target_max
                                                                   - self.target_min)

    def bin_channels(self) -> np.ndarray:
        """First raw channel of every kept bin."""
        return self.settings.first_channel + self.kept_bins * self.settings.merge

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict:
        return {"settings": asdict(self.settings), "n_channels": self.n_channels,
                "kept_bins": self.kept_bins.tolist(),
                "feature_mean": self.feature_mean.tolist(),
                "feature_std": self.feature_std.tolist(),
                "parameter_names": self.parameter_names,
                "target_min": self.target_min.tolist(), "target_max": self.target_max.tolist(),
                "fit_info": self.fit_info}

    @classmethod
    def from_dict(cls, d: dict) -> SpectrumTransform:
        return cls(settings=PreprocessSettings(**d["settings"]), n_channels=int(d["n_channels"]),
                   kept_bins=np.asarray(d["kept_bins"], dtype=np.int64),
                   feature_mean=np.asarray(d["feature_mean"], dtype=np.float64),
                   feature_std=np.asarray(d["feature_std"], dtype=np.float64),
                   parameter_names=list(d["parameter_names"]),
                   target_min=np.asarray(d["target_min"], dtype=np.float64),
                   target_max=np.asarray(d["target_max"], dtype=np.float64),
                   fit_info=dict(d.get("fit_info", {})))

    def save(self, path: str | Path) -> None:
        """JSON (floats written exactly: loading gives the same transform bit for bit)."""
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> SpectrumTransform:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a specinv preprocessing file ({exc})") from None


def check_counts(counts: np.ndarray, expected_channels: int | None = None) -> None:
    """Raise ValueError for spectra that cannot be preprocessed (wrong length, NaN, negative)."""
    if counts.ndim != 2:
        raise ValueError(f"spectra: expected an array [spectra, channels], got shape "
                         f"{counts.shape}")
    if expected_channels is not None and counts.shape[1] != expected_channels:
        raise ValueError(f"spectra: expected {expected_channels} channels, got {counts.shape[1]}")
    if counts.dtype.kind == "f" and not np.isfinite(counts).all():
        bad = np.argwhere(~np.isfinite(counts))[0]
        raise ValueError(f"spectra: non-finite count at spectrum {bad[0]}, channel {bad[1]}")
    if (counts < 0).any():
        bad = np.argwhere(counts < 0)[0]
        raise ValueError(f"spectra: negative count {counts[bad[0], bad[1]]} at spectrum "
                         f"{bad[0]}, channel {bad[1]}")


def merge_channels(counts: np.ndarray, first_channel: int, merge: int) -> np.ndarray:
    """Sums of ``merge`` adjacent channels from ``first_channel`` on (a trailing incomplete
    group is dropped), float64 [N, bins]."""
    n_bins = (counts.shape[1] - first_channel) // merge
    if n_bins <= 0:
        raise ValueError(f"spectra: {counts.shape[1]} channels leave no bin after dropping "
                         f"{first_channel} and merging {merge}")
    block = counts[:, first_channel:first_channel + n_bins * merge].astype(np.float64)
    return block.reshape(counts.shape[0], n_bins, merge).sum(axis=2)


def variance_keep_mask(merged: np.ndarray, sigmas: float) -> np.ndarray:
    """True for bins whose standard deviation across spectra exceeds sigmas·sqrt(mean)."""
    return merged.std(axis=0) > sigmas * np.sqrt(merged.mean(axis=0))


def _smooth(merged: np.ndarray, settings: PreprocessSettings) -> np.ndarray:
    if not settings.savgol_window or merged.shape[1] < settings.savgol_window:
        return merged
    return savgol_filter(merged, settings.savgol_window, settings.savgol_polyorder, axis=1)


def processed_dataset(raw, transform: SpectrumTransform):
    """The network-ready form of a raw split (xarray Dataset with ``counts`` and ``params``):
    ``x`` [sample, feature] float32 features, ``y`` [sample, param] float32 targets in
    [0, 1] (training range), and the physical ``params``."""
    import xarray as xr

    x = transform.features(raw["counts"].values)
    params = raw["params"].values
    first = transform.bin_channels()
    return xr.Dataset(
        {"x": (("sample", "feature"), x, {"long_name": "preprocessed spectrum"}),
         "y": (("sample", "param"), transform.scale_targets(params),
               {"long_name": "parameters min-max scaled with the training range"}),
         "params": raw["params"].variable},
        coords={"sample": raw["sample"].values, "param": raw["param"].values,
                "feature": np.arange(x.shape[1]),
                "first_channel": ("feature", first,
                                  {"long_name": "first raw channel of the merged bin"})},
        attrs={**raw.attrs, "preprocessing": json.dumps(asdict(transform.settings))})
