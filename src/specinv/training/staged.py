"""Staged training of the MDN and prediction in physical units.

Training runs in stages with decreasing learning rates (the paper: 100 epochs in 5 steps);
every stage starts from the best validation checkpoint of the previous one, with a fresh
AdamW optimizer, and stops early when the validation loss has not improved for
``patience`` epochs.  Each stage keeps its best and last checkpoints and a CSV log; a
finished stage leaves ``done.json``.  Rerunning after an interruption skips finished
stages and resumes the interrupted one from its last checkpoint (optimizer, epoch and
early-stopping state included) — but only stages whose recorded fingerprint (settings,
architecture, data hash and preprocessing, and the previous stage's fingerprint) is that
of the current run; others are trained afresh.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import xarray as xr
from pytorch_lightning.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from ..data.config import dataset_config
from ..data.generate import expected_spectra
from ..data.io import read_dataset
from ..data.preprocess import SpectrumTransform
from ..fileio import atomic_path
from ..models import PAPER_ARCHITECTURES, mixture_mean, mixture_variance
from .lightning import MDNRegressor, ProcessedData, ResampledNoiseData


@dataclass(frozen=True)
class TrainingSettings:
    """Config section ``training`` (defaults follow the paper where it says)."""

    learning_rates: Sequence[float] = (1e-3, 5e-4, 2.5e-4, 1e-4, 5e-5)
    epochs: int = 100
    patience: int = 20
    batch_size: int = 256
    weight_decay: float = 1e-4
    seed: int = 0
    accelerator: str = "auto"
    progress_bar: bool = True
    sizes: Sequence[int] = field(default_factory=tuple)
    #: draw the training spectra's Poisson noise afresh every epoch (beyond the paper)
    resample_noise: bool = False
    #: decay per optimizer step of an exponential moving average of the weights, which is
    #: then what is validated, checkpointed and passed to the next stage (0: off, the paper)
    ema_decay: float = 0.0
    #: networks trained per training-set size (seeds seed, seed + 1, …), whose predictions
    #: are pooled into one mixture (a deep ensemble; 1: a single network, the paper)
    ensemble: int = 1

    @property
    def epochs_per_stage(self) -> int:
        return max(1, self.epochs // len(self.learning_rates))

    def member(self, index: int) -> TrainingSettings:
        """The settings of the ensemble's network ``index`` (0 … ensemble − 1): its seed is
        ``seed + index``."""
        if not 0 <= index < self.ensemble:
            raise ValueError(f"ensemble member {index}: expected 0 … {self.ensemble - 1}")
        return replace(self, seed=self.seed + index)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainingSettings:
        t = dict(config.get("training", {}))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(t) - known)
        if unknown:
            raise ValueError(f"training: unknown key(s) {', '.join(unknown)}")
        settings = cls(**t)
        if not settings.learning_rates or any(lr <= 0 for lr in settings.learning_rates):
            raise ValueError("training.learning_rates: expected a non-empty list of rates > 0")
        for name in ("epochs", "patience", "batch_size", "ensemble"):
            if getattr(settings, name) < 1:
                raise ValueError(f"training.{name}: expected >= 1, got {getattr(settings, name)}")
        if not 0.0 <= settings.ema_decay < 1.0:
            raise ValueError(f"training.ema_decay: expected 0 (off) or a decay in (0, 1), got "
                             f"{settings.ema_decay}")
        return settings


def model_settings(config: Mapping[str, Any]) -> dict:
    """Config section ``model``: a paper ``architecture`` (A, B or C) plus overrides."""
    m = dict(config.get("model", {}))
    arch = m.pop("architecture", "A")
    if arch not in PAPER_ARCHITECTURES:
        raise ValueError(f"model.architecture: expected one of "
                         f"{', '.join(PAPER_ARCHITECTURES)}, got {arch!r}")
    return {**PAPER_ARCHITECTURES[arch], **m}


def _stage_result(stage_dir: Path) -> dict | None:
    done = stage_dir / "done.json"
    return json.loads(done.read_text()) if done.exists() else None


def _data_fingerprint(path: str | Path) -> dict:
    """What identifies a processed split: its data hash and preprocessing settings."""
    with xr.open_dataset(path) as ds:
        return {k: str(ds.attrs.get(k, "")) for k in ("data_hash", "preprocessing", "split")}


def _settings_dict(settings: TrainingSettings) -> dict:
    """The training settings as a JSON-ready dict (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.__dict__.items()}


def _stage_fingerprint(previous: dict | None, stage: int, lr: float, n_train: int,
                       architecture: Mapping[str, Any], settings: TrainingSettings,
                       data: dict) -> dict:
    """Everything a stage's result depends on, including the previous stage's fingerprint;
    a stage found on disk is reused (or resumed) only if its fingerprint is the same."""
    kept = {k: v for k, v in _settings_dict(settings).items()
            if k not in ("sizes", "progress_bar", "accelerator", "learning_rates", "epochs",
                         "ensemble")}
    return json.loads(json.dumps(
        {"stage": stage, "learning_rate": lr, "epochs": settings.epochs_per_stage,
         "n_train": n_train, "architecture": dict(architecture), "settings": kept,
         "data": data, "previous": previous}, default=str))


def _clear_stale_stage(stage_dir: Path, fingerprint: dict) -> None:
    """Remove a stage left by a run with other settings or data (or by a version that did
    not record them), then record the fingerprint of the stage about to run."""
    record = stage_dir / "fingerprint.json"
    if stage_dir.exists():
        found = json.loads(record.read_text()) if record.exists() else None
        if found == fingerprint:
            return
        shutil.rmtree(stage_dir)
        print(f"{stage_dir}: left by a run with other settings or data; trained afresh",
              file=sys.stderr)
    stage_dir.mkdir(parents=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(fingerprint, indent=1))


def noise_free_training_spectra(config: Mapping[str, Any], raw_train: str | Path,
                                n_train: int) -> np.ndarray:
    """Noise-free spectra [n_train, C] of the first ``n_train`` samples of the raw training
    split, re-simulated with the dataset's forward model (for ``training.resample_noise``)."""
    cfg = dataset_config(config)
    if cfg.noise != "poisson":
        raise ValueError(f"training.resample_noise: needs data.noise: poisson, got {cfg.noise!r}")
    params = read_dataset(raw_train)["params"].values[:n_train]
    return expected_spectra(cfg.build_technique(), params, cfg.batch_size)


def train_staged(train: str | Path, validation: str | Path, out_dir: str | Path,
                 n_train: int, model: Mapping[str, Any], settings: TrainingSettings,
                 callbacks: Sequence[pl.Callback] = (), expected: np.ndarray | None = None,
                 transform: SpectrumTransform | None = None) -> dict:
    """Train (or finish training) an MDN on the first ``n_train`` spectra.

    Writes ``out_dir/model.ckpt`` (the checkpoint with the lowest validation loss of all
    stages) and ``out_dir/summary.json``; returns the summary.  ``callbacks`` are added to
    every stage's trainer.  With ``settings.resample_noise``, ``expected`` (the noise-free
    spectra of the first ``n_train`` training samples) and the preprocessing ``transform``
    are needed: the noise is then drawn afresh every epoch (:class:`ResampledNoiseData`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(settings.seed, workers=True)
    if settings.resample_noise:
        if expected is None or transform is None:
            raise ValueError("training.resample_noise needs the noise-free training spectra "
                             "and the preprocessing transform")
        data = ResampledNoiseData(str(train), str(validation), expected, transform, n_train,
                                  settings.batch_size, settings.seed)
    else:
        data = ProcessedData(str(train), str(validation), n_train, settings.batch_size,
                             settings.seed)
    architecture = {**model, "input_length": data.input_length, "n_params": data.n_params}
    fingerprint_data = {"train": _data_fingerprint(train),
                        "validation": _data_fingerprint(validation)}
    stages = []
    best_path = None
    fingerprint = None
    for k, lr in enumerate(settings.learning_rates):
        stage_dir = out / f"stage{k + 1}"
        fingerprint = _stage_fingerprint(fingerprint, k + 1, lr, n_train, architecture,
                                         settings, fingerprint_data)
        _clear_stale_stage(stage_dir, fingerprint)
        done = _stage_result(stage_dir)
        data.stage = k
        if done is None:
            done = _train_stage(stage_dir, data, architecture, lr, best_path, settings,
                                callbacks)
        stages.append(done)
        best_path = done["best_checkpoint"]
    overall = min(stages, key=lambda s: s["best_val_loss"])
    with atomic_path(out / "model.ckpt") as tmp:
        shutil.copyfile(overall["best_checkpoint"], tmp)
    summary = {"n_train": n_train, "architecture": architecture,
               "settings": _settings_dict(settings),
               "stages": stages, "best_val_loss": overall["best_val_loss"],
               "train_seconds": sum(s["seconds"] for s in stages)}
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


def _train_stage(stage_dir: Path, data: ProcessedData, architecture: dict, lr: float,
                 previous_best: str | None, settings: TrainingSettings,
                 callbacks: Sequence[pl.Callback]) -> dict:
    last = stage_dir / "checkpoints" / "last.ckpt"
    if previous_best is None:
        module = MDNRegressor(architecture, lr=lr, weight_decay=settings.weight_decay)
    else:
        module = MDNRegressor.load_from_checkpoint(previous_best, lr=lr,
                                                   weight_decay=settings.weight_decay)
    checkpoint = ModelCheckpoint(dirpath=stage_dir / "checkpoints", filename="best",
                                 monitor="val_loss", mode="min", save_top_k=1, save_last=True)
    # with weight averaging, validation runs on the averaged weights and checkpoints hold
    # them as their state dict (the raw weights ride along for resuming)
    averaging = ([EMAWeightAveraging(decay=settings.ema_decay)] if settings.ema_decay > 0
                 else [])
    trainer = pl.Trainer(
        max_epochs=settings.epochs_per_stage, accelerator=settings.accelerator, devices=1,
        logger=CSVLogger(stage_dir.parent, name=stage_dir.name, version=""),
        callbacks=[checkpoint, EarlyStopping(monitor="val_loss", mode="min",
                                             patience=settings.patience), *averaging,
                   *callbacks],
        reload_dataloaders_every_n_epochs=1 if settings.resample_noise else 0,
        deterministic="warn", enable_progress_bar=settings.progress_bar,
        enable_model_summary=previous_best is None, log_every_n_steps=10)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training interrupted in {stage_dir}; rerun to resume")
    result = {"learning_rate": lr, "epochs": trainer.current_epoch,
              "best_val_loss": float(checkpoint.best_model_score),
              "best_checkpoint": str(checkpoint.best_model_path),
              "seconds": time.perf_counter() - t0,
              "device": str(trainer.strategy.root_device)}
    with atomic_path(stage_dir / "done.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def predict(checkpoints: str | Path | Sequence[str | Path], processed: str | Path,
            transform: SpectrumTransform, batch_size: int = 1024) -> xr.Dataset:
    """Mixture parameters, mean and standard deviation, in physical units, for every
    spectrum of a preprocessed split; with the true parameters for comparison.

    Several checkpoints (a deep ensemble of K networks) give one mixture of all their
    components, each network weighted 1/K: its mean is the average of the networks' means,
    and its variance adds their disagreement to their own variances.
    """
    if isinstance(checkpoints, str | Path):
        checkpoints = [checkpoints]
    if not checkpoints:
        raise ValueError("checkpoints: expected at least one")
    ds = read_dataset(processed)
    x = torch.as_tensor(ds["x"].values)
    members = []
    for checkpoint in checkpoints:
        module = MDNRegressor.load_from_checkpoint(str(checkpoint), map_location="cpu")
        module.eval()
        outs = []
        with torch.inference_mode():
            for b0 in range(0, len(x), batch_size):
                outs.append(module(x[b0:b0 + batch_size]))
        members.append([torch.cat(t).double() for t in zip(*outs, strict=True)])
    log_pi, mu, sigma = (torch.cat(t, dim=1) for t in zip(*members, strict=True))
    log_pi = log_pi - math.log(len(members))
    scale = torch.as_tensor(transform.target_max - transform.target_min)
    offset = torch.as_tensor(transform.target_min)
    mean = mixture_mean(log_pi, mu) * scale + offset
    std = mixture_variance(log_pi, mu, sigma).sqrt() * scale
    dims = ("sample", "component", "param")
    unit = ds["params"].attrs.get("units", "")
    return xr.Dataset(
        {"log_pi": (dims[:2], log_pi.numpy(), {"long_name": "log mixture weights"}),
         "mu": (dims, (mu * scale + offset).numpy(), {"long_name": "component means",
                                                       "units": unit}),
         "sigma": (dims, (sigma * scale).numpy(), {"long_name": "component standard "
                                                    "deviations", "units": unit}),
         "mean": (("sample", "param"), mean.numpy(), {"long_name": "mixture mean",
                                                      "units": unit}),
         "std": (("sample", "param"), std.numpy(), {"long_name": "mixture standard deviation",
                                                    "units": unit}),
         "true": (("sample", "param"), ds["params"].values, {"long_name": "true parameters",
                                                             "units": unit})},
        coords={"sample": ds["sample"].values, "param": ds["param"].values,
                "component": np.arange(log_pi.shape[1])},
        attrs={**ds.attrs, "checkpoint": ", ".join(str(c) for c in checkpoints),
               "ensemble": len(members)})


def median_relative_error(predictions: xr.Dataset) -> dict[str, float]:
    """Median over the spectra of |mean − true| / true, per parameter."""
    rel = np.abs(predictions["mean"].values - predictions["true"].values) / np.abs(
        predictions["true"].values)
    return dict(zip(predictions["param"].values.tolist(), np.median(rel, axis=0).tolist(),
                    strict=True))
