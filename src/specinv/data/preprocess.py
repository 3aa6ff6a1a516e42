"""Preprocessing of spectra for the networks: fitted on the training split only, saved, and
re-applied unchanged to validation, test and any new (e.g. measured) spectrum.

Steps (following Muzakka et al. 2024; every step is a setting, and each technique
gives its own defaults, ``Technique.preprocessing_defaults``):

1. region of interest: drop the first ``first_channel`` channels;
2. merge every ``merge`` adjacent channels (sums of counts);
3. optionally take log(1 + counts) (``log``: spectra over many decades, e.g. XRD), then
   optionally divide every spectrum by its largest bin (``normalize: max``: spectra whose
   overall level carries no information, e.g. EELS);
4. Savitzky–Golay smoothing of the merged spectrum (window and polynomial order in
   merged bins; window 0 switches it off);
5. pruning (``prune: variance``): keep only the merged bins whose standard deviation
   across the training spectra exceeds ``sigmas``·sqrt(mean), i.e. that vary by more than
   Poisson scatter around a constant (bins that are always zero go too); ``none`` keeps
   every bin;
6. standard scaling of every kept bin (training mean and standard deviation), float32;
7. targets: min–max scaling of every parameter to [0, 1] (training minimum and maximum)
   for regression; labels (multi-label techniques) stay 0/1.

The pruning decision (5) is made on the merged raw counts; the features are taken from the
smoothed spectrum, so smoothing never mixes bins across a pruned gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from ..fileio import atomic_path

PRUNING = ("variance", "none")
#: per-spectrum normalisations (step 3)
NORMALIZATIONS = ("none", "max")


@dataclass(frozen=True)
class PreprocessSettings:
    """Settings of the preprocessing (config section ``preprocessing``).

    The defaults here are the neutral ones (every channel, no merging, no smoothing); a
    technique's ``preprocessing_defaults`` replace them, and a configuration's
    ``preprocessing`` section replaces those (:func:`preprocess_settings`).
    """

    first_channel: int = 0
    merge: int = 1
    log: bool = False
    normalize: str = "none"
    prune: str = "variance"
    sigmas: float = 3.0
    savgol_window: int = 0
    savgol_polyorder: int = 2

    def __post_init__(self):
        if self.first_channel < 0:
            raise ConfigError(
                f"preprocessing.first_channel: expected >= 0, got {self.first_channel}"
            )
        if self.merge < 1:
            raise ConfigError(f"preprocessing.merge: expected >= 1, got {self.merge}")
        if self.prune not in PRUNING:
            raise ConfigError(
                f"preprocessing.prune: expected one of {', '.join(PRUNING)}, got {self.prune!r}"
            )
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(
                f"preprocessing.normalize: expected one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalize!r}"
            )
        if self.savgol_window and (
            self.savgol_window % 2 == 0 or self.savgol_window <= self.savgol_polyorder
        ):
            raise ConfigError(
                "preprocessing.savgol.window: expected 0 (off) or an odd number "
                f"above polyorder {self.savgol_polyorder}, got {self.savgol_window}"
            )

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> PreprocessSettings:
        """From the keys of a ``preprocessing`` section (``savgol: {window, polyorder}``)."""
        flat = {k: v for k, v in section.items() if k != "savgol"}
        for k, v in dict(section.get("savgol") or {}).items():
            flat[f"savgol_{k}"] = v
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigError(f"preprocessing: unknown key(s) {', '.join(unknown)}")
        return cls(**flat)

    def to_section(self) -> dict[str, Any]:
        """The settings as a ``preprocessing`` section (inverse of :meth:`from_section`)."""
        d = asdict(self)
        return {
            **{k: v for k, v in d.items() if not k.startswith("savgol_")},
            "savgol": {"window": d["savgol_window"], "polyorder": d["savgol_polyorder"]},
        }


def _merged(*sections: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in sections:
        for k, v in (section or {}).items():
            out[k] = {**out.get(k, {}), **v} if isinstance(v, Mapping) else v
    return out


def preprocess_settings(
    config: Mapping[str, Any], technique_defaults: Mapping[str, Any] | None = None
) -> PreprocessSettings:
    """The preprocessing of a workflow configuration: its ``preprocessing`` section over the
    technique's defaults (``technique_defaults``: ``Technique.preprocessing_defaults``)
    over the neutral ones.  Raises :class:`~specinv.config.ConfigError` naming the key."""
    return PreprocessSettings.from_section(
        _merged(
            PreprocessSettings().to_section(),
            technique_defaults or {},
            config.get("preprocessing", {}),
        )
    )


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
    #: min-max scaled targets (regression); False: 0/1 labels kept as they are
    scale_targets_to_unit: bool = True

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        counts: np.ndarray,
        targets: np.ndarray,
        parameter_names: list[str],
        settings: PreprocessSettings = PreprocessSettings(),
        scale_targets: bool = True,
    ) -> SpectrumTransform:
        """Fit on training spectra ``counts`` [N, C] and their targets [N, T]: parameters
        (min-max scaled, ``scale_targets``) or 0/1 labels (kept as they are)."""
        counts = np.asarray(counts)
        check_counts(counts)
        merged = merge_channels(counts, settings.first_channel, settings.merge)
        keep = (
            variance_keep_mask(merged, settings.sigmas)
            if settings.prune == "variance"
            else np.ones(merged.shape[1], dtype=bool)
        )
        kept = np.nonzero(keep)[0]
        if kept.size == 0:
            raise ValueError(
                "preprocessing: every bin was pruned (no bin varies more than "
                f"{settings.sigmas} sqrt(mean) across the training spectra)"
            )
        features = _smooth(merged, settings)[:, kept]
        std = features.std(axis=0)
        targets = np.asarray(targets, dtype=np.float64)
        if scale_targets:
            t_min, t_max = targets.min(axis=0), targets.max(axis=0)
        else:
            t_min, t_max = np.zeros(targets.shape[1]), np.ones(targets.shape[1])
        return cls(
            settings=settings,
            scale_targets_to_unit=bool(scale_targets),
            n_channels=counts.shape[1],
            kept_bins=kept,
            feature_mean=features.mean(axis=0),
            feature_std=np.where(std > 0, std, 1.0),
            parameter_names=list(parameter_names),
            target_min=t_min,
            target_max=np.where(t_max > t_min, t_max, t_min + 1.0),
            fit_info={"n_train": int(counts.shape[0]), "n_bins": int(merged.shape[1])},
        )

    # ------------------------------------------------------------------ applying
    def features(self, counts: np.ndarray) -> np.ndarray:
        """Preprocessed float32 features [N, F] of raw counts [N, C] (or [C] -> [F])."""
        counts = np.asarray(counts)
        single = counts.ndim == 1
        counts = np.atleast_2d(counts)
        check_counts(counts, expected_channels=self.n_channels)
        merged = merge_channels(counts, self.settings.first_channel, self.settings.merge)
        x = (_smooth(merged, self.settings)[:, self.kept_bins] - self.feature_mean) / (
            self.feature_std
        )
        x = x.astype(np.float32)
        return x[0] if single else x

    def scale_targets(self, y: np.ndarray) -> np.ndarray:
        """Physical parameters -> [0, 1] (float32)."""
        return ((np.asarray(y) - self.target_min) / (self.target_max - self.target_min)).astype(
            np.float32
        )

    def unscale_targets(self, z: np.ndarray) -> np.ndarray:
        """[0, 1] -> physical parameters (float64)."""
        return self.target_min + np.asarray(z, dtype=np.float64) * (
            self.target_max - self.target_min
        )

    def bin_channels(self) -> np.ndarray:
        """First raw channel of every kept bin."""
        return self.settings.first_channel + self.kept_bins * self.settings.merge

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict:
        return {
            "settings": asdict(self.settings),
            "n_channels": self.n_channels,
            "kept_bins": self.kept_bins.tolist(),
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "parameter_names": self.parameter_names,
            "target_min": self.target_min.tolist(),
            "target_max": self.target_max.tolist(),
            "fit_info": self.fit_info,
            "scale_targets": self.scale_targets_to_unit,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpectrumTransform:
        return cls(
            settings=PreprocessSettings(**d["settings"]),
            n_channels=int(d["n_channels"]),
            kept_bins=np.asarray(d["kept_bins"], dtype=np.int64),
            feature_mean=np.asarray(d["feature_mean"], dtype=np.float64),
            feature_std=np.asarray(d["feature_std"], dtype=np.float64),
            parameter_names=list(d["parameter_names"]),
            target_min=np.asarray(d["target_min"], dtype=np.float64),
            target_max=np.asarray(d["target_max"], dtype=np.float64),
            fit_info=dict(d.get("fit_info", {})),
            scale_targets_to_unit=bool(d.get("scale_targets", True)),
        )

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
        raise ValueError(
            f"spectra: expected an array [spectra, channels], got shape {counts.shape}"
        )
    if expected_channels is not None and counts.shape[1] != expected_channels:
        raise ValueError(f"spectra: expected {expected_channels} channels, got {counts.shape[1]}")
    if counts.dtype.kind == "f" and not np.isfinite(counts).all():
        bad = np.argwhere(~np.isfinite(counts))[0]
        raise ValueError(f"spectra: non-finite count at spectrum {bad[0]}, channel {bad[1]}")
    if (counts < 0).any():
        bad = np.argwhere(counts < 0)[0]
        raise ValueError(
            f"spectra: negative count {counts[bad[0], bad[1]]} at spectrum "
            f"{bad[0]}, channel {bad[1]}"
        )


def merge_channels(counts: np.ndarray, first_channel: int, merge: int) -> np.ndarray:
    """Sums of ``merge`` adjacent channels from ``first_channel`` on (a trailing incomplete
    group is dropped), float64 [N, bins]."""
    n_bins = (counts.shape[1] - first_channel) // merge
    if n_bins <= 0:
        raise ValueError(
            f"spectra: {counts.shape[1]} channels leave no bin after dropping "
            f"{first_channel} and merging {merge}"
        )
    block = counts[:, first_channel : first_channel + n_bins * merge].astype(np.float64)
    return block.reshape(counts.shape[0], n_bins, merge).sum(axis=2)


def variance_keep_mask(merged: np.ndarray, sigmas: float) -> np.ndarray:
    """True for bins whose standard deviation across spectra exceeds sigmas·sqrt(mean)."""
    return merged.std(axis=0) > sigmas * np.sqrt(merged.mean(axis=0))


def _smooth(merged: np.ndarray, settings: PreprocessSettings) -> np.ndarray:
    """The (log and) smoothed merged spectra, from which the features are taken."""
    if settings.log:
        merged = np.log1p(merged)
    if settings.normalize == "max":
        top = merged.max(axis=1, keepdims=True)
        merged = merged / np.where(top > 0, top, 1.0)
    if not settings.savgol_window or merged.shape[1] < settings.savgol_window:
        return merged
    from scipy.signal import savgol_filter  # imported here: a slow import (0.7 s)

    return savgol_filter(merged, settings.savgol_window, settings.savgol_polyorder, axis=1)


def training_targets(raw) -> tuple[np.ndarray, list[str], bool]:
    """What a network learns from a raw split: (targets [N, T], their names, whether they are
    scaled): the ``labels`` of a multi-label dataset, else the ``params``."""
    if "labels" in raw:
        return raw["labels"].values, [str(v) for v in raw["label"].values], False
    return raw["params"].values, [str(v) for v in raw["param"].values], True


def processed_dataset(raw, transform: SpectrumTransform):
    """The network-ready form of a raw split (xarray Dataset with ``counts`` and ``params``,
    and ``labels`` for a multi-label technique): ``x`` [sample, feature] float32 features,
    ``y`` float32 targets — [sample, param] parameters scaled to [0, 1] with the training
    range, or [sample, label] 0/1 labels — and the physical ``params``."""
    import xarray as xr

    x = transform.features(raw["counts"].values)
    first = transform.bin_channels()
    data = {"x": (("sample", "feature"), x, {"long_name": "preprocessed spectrum"})}
    coords = {"sample": raw["sample"].values, "param": raw["param"].values}
    if "labels" in raw:
        data["y"] = (
            ("sample", "label"),
            raw["labels"].values.astype(np.float32),
            {"long_name": "1 where the label is present, else 0"},
        )
        data["labels"] = raw["labels"].variable
        coords["label"] = raw["label"].values
    else:
        data["y"] = (
            ("sample", "param"),
            transform.scale_targets(raw["params"].values),
            {"long_name": "parameters min-max scaled with the training range"},
        )
    data["params"] = raw["params"].variable
    coords.update(
        {
            "feature": np.arange(x.shape[1]),
            "first_channel": (
                "feature",
                first,
                {"long_name": "first raw channel of the merged bin"},
            ),
        }
    )
    return xr.Dataset(
        data,
        coords=coords,
        attrs={**raw.attrs, "preprocessing": json.dumps(asdict(transform.settings))},
    )
