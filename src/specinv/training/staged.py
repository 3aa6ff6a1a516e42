"""Staged training of an inverse model (any kind of the registry) and prediction in
physical units.

Training runs in stages with decreasing learning rates (the paper: 100 epochs in 5 steps);
every stage starts from the best validation checkpoint of the previous one, with a fresh
AdamW optimizer, and stops early when the validation loss has not improved for
``patience`` epochs.  Each stage keeps its best and last checkpoints and a CSV log; a
finished stage leaves ``done.json``.  Rerunning after an interruption skips finished
stages and resumes the interrupted one from its last checkpoint (optimizer, epoch and
early-stopping state included) — but only stages whose recorded fingerprint (settings,
architecture, data hash and preprocessing, and the previous stage's fingerprint) is that
of the current run; others are trained afresh.  A resumed training ends with the weights of
an uninterrupted one (exactly, on the CPU): the data order, the resampled noise and the
global generators (dropout) of every epoch depend on (seed, stage, epoch) only
(:mod:`specinv.training.lightning`), the optimizer, the weight average and the callbacks'
states come from the checkpoint; the stage's ``metrics.csv`` keeps its rows up to the
checkpoint's epoch.  A stage whose loss becomes non-finite or diverges stops with
:class:`TrainingDiverged`.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import xarray as xr
from pytorch_lightning.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from torch.utils.data import DataLoader, TensorDataset

from ..config import ConfigError
from ..data.config import DatasetConfig
from ..data.generate import expected_spectra
from ..data.io import read_dataset
from ..data.preprocess import SpectrumTransform
from ..fileio import atomic_path
from ..models import model_kind
from .lightning import EpochSeeding, InverseModel, ProcessedData, ResampledNoiseData
from .settings import TrainingSettings, model_settings  # noqa: F401 (re-exported)

#: A stage's training diverges when its validation loss exceeds that of the weights it
#: started from by more than DIVERGENCE_FACTOR times the larger of that loss's size and 1
#: (or when a loss is not finite): :class:`_DivergenceCheck`.
DIVERGENCE_FACTOR = 1e4


class TrainingDiverged(ConfigError):
    """A training stopped because its loss became non-finite or diverged; the message names
    the stage, the epoch, the losses and ``training.learning_rates`` (a bad value of which
    is the usual cause)."""


def _validation_loss(module: InverseModel, loader: DataLoader) -> float:
    """The module's loss on the validation loader (its mean over the spectra), in eval mode."""
    training = module.training
    module.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += float(module.batch_loss((x.to(module.device), y.to(module.device)))) * len(x)
            n += len(x)
    module.train(training)
    return total / n


class _DivergenceCheck(pl.Callback):
    """Stops a diverging stage with :class:`TrainingDiverged`, at the end of a training epoch
    (after its validation, before its checkpoint) whose training or validation loss is not
    finite, or whose validation loss exceeds ``start + DIVERGENCE_FACTOR * max(|start|, 1)``.

    ``start`` is the validation loss of the weights the stage started from: the previous
    stage's best, or (``None``) that of the initial network, computed when the stage
    starts; a resumed stage takes it from its checkpoint.
    """

    def __init__(self, stage: int, learning_rates: Sequence[float], start: float | None):
        self.stage, self.rates, self.start = stage, list(learning_rates), start

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.start = state_dict["start"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: InverseModel) -> None:
        if self.start is None:
            self.start = _validation_loss(pl_module, trainer.datamodule.val_dataloader())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: InverseModel) -> None:
        metrics = trainer.callback_metrics
        losses = {k: float(metrics[k]) for k in ("val_loss", "train_loss") if k in metrics}
        limit = self.start + DIVERGENCE_FACTOR * max(abs(self.start), 1.0)
        if all(np.isfinite(v) for v in losses.values()) and losses.get("val_loss", 0) <= limit:
            return
        found = ", ".join(
            f"{'validation' if k == 'val_loss' else 'training'} loss {v:.4g}"
            for k, v in losses.items()
        )
        raise TrainingDiverged(
            f"training diverged in stage {self.stage} (learning rate "
            f"{self.rates[self.stage - 1]:g}), epoch {trainer.current_epoch}: {found}, where "
            f"the weights the stage started from had a validation loss of {self.start:.4g} "
            f"(diverged: not finite, or above {limit:.4g}); training.learning_rates: "
            f"expected lower rates, got {self.rates}"
        )


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


def _stage_fingerprint(
    previous: dict | None,
    stage: int,
    lr: float,
    n_train: int,
    architecture: Mapping[str, Any],
    settings: TrainingSettings,
    data: dict,
) -> dict:
    """Everything a stage's result depends on, including the previous stage's fingerprint;
    a stage found on disk is reused (or resumed) only if its fingerprint is the same."""
    kept = {
        k: v
        for k, v in _settings_dict(settings).items()
        if k not in ("sizes", "progress_bar", "accelerator", "learning_rates", "epochs", "ensemble")
    }
    return json.loads(
        json.dumps(
            {
                "stage": stage,
                "learning_rate": lr,
                "epochs": settings.epochs_per_stage,
                "n_train": n_train,
                "architecture": dict(architecture),
                "settings": kept,
                "data": data,
                "previous": previous,
            },
            default=str,
        )
    )


def _clear_stale_stage(stage_dir: Path, fingerprint: dict) -> None:
    """Remove a stage left by a run with other settings or data (or by a version that did
    not record them), then record the fingerprint of the stage about to run."""
    record = stage_dir / "fingerprint.json"
    if stage_dir.exists():
        found = json.loads(record.read_text()) if record.exists() else None
        if found == fingerprint:
            return
        shutil.rmtree(stage_dir)
        print(
            f"{stage_dir}: left by a run with other settings or data; trained afresh",
            file=sys.stderr,
        )
    stage_dir.mkdir(parents=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(fingerprint, indent=1))


class _StageLogger(CSVLogger):
    """The CSV log of a stage, ``stage_dir/metrics.csv``, continued when the stage resumes.

    Lightning's CSV writer starts its folder afresh (removing ``metrics.csv``); resuming
    from a checkpoint of epoch ``last_epoch``, this logger writes back the rows of the
    epochs up to ``last_epoch`` as they were (read when it is made) and drops those of later
    epochs, which the resumed training logs again; so the file has one row set per epoch.
    """

    def __init__(self, stage_dir: Path, last_epoch: int | None = None):
        super().__init__(stage_dir.parent, name=stage_dir.name, version="")
        self._kept = None
        metrics = stage_dir / "metrics.csv"
        if last_epoch is not None and metrics.exists():
            with open(metrics, newline="") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if r.get("epoch") and float(r["epoch"]) <= last_epoch]
                self._kept = (list(reader.fieldnames or []), rows)

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        with warnings.catch_warnings():
            # Lightning warns that "previous log files will be deleted" whenever the folder
            # holds anything (here always: the stage's fingerprint); it only replaces
            # metrics.csv, whose rows this logger restores
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* not empty")
            writer = super().experiment
        if self._kept is not None:
            header, rows = self._kept
            with atomic_path(writer.metrics_file_path) as tmp:
                with open(tmp, "w", newline="") as f:
                    out = csv.DictWriter(f, fieldnames=header)
                    out.writeheader()
                    out.writerows(rows)
            # the writer appends to an existing file under the header it knows
            writer.metrics_keys = list(header)
        return writer


def noise_free_training_spectra(
    cfg: DatasetConfig, raw_train: str | Path, n_train: int
) -> np.ndarray:
    """Noise-free spectra [n_train, C] of the first ``n_train`` samples of the raw training
    split, re-simulated with the dataset's forward model (for ``training.resample_noise``)."""
    if cfg.noise == "none":
        raise ConfigError("training.resample_noise: needs a noise model (data.noise), got none")
    params = read_dataset(raw_train)["params"].values[:n_train]
    return expected_spectra(cfg.technique_instance, params, cfg.batch_size)


def technique_noise(cfg: DatasetConfig):
    """``add_noise(expected [n, C], rng) -> counts [n, C]`` with the technique's noise model
    (every spectrum from the same generator, in order)."""
    technique = cfg.technique_instance

    def add_noise(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack([technique.add_noise(row, rng, cfg.noise) for row in expected])

    return add_noise


def train_staged(
    train: str | Path,
    validation: str | Path,
    out_dir: str | Path,
    n_train: int,
    model: Mapping[str, Any],
    settings: TrainingSettings,
    callbacks: Sequence[pl.Callback] = (),
    expected: np.ndarray | None = None,
    transform: SpectrumTransform | None = None,
    add_noise=None,
) -> dict:
    """Train (or finish training) an inverse model on the first ``n_train`` spectra.

    ``model`` is ``{"kind": ..., "architecture": {...}}`` (:func:`model_settings`).

    Writes ``out_dir/model.ckpt`` (the checkpoint with the lowest validation loss of all
    stages) and ``out_dir/summary.json`` (those of an earlier training are removed first, so
    that a failed one leaves none); returns the summary.  Raises :class:`TrainingDiverged`
    when a stage's loss becomes non-finite or diverges.  ``callbacks`` are added to
    every stage's trainer.  With ``settings.resample_noise``, ``expected`` (the noise-free
    spectra of the first ``n_train`` training samples), the preprocessing ``transform`` and
    the technique's ``add_noise`` (:func:`technique_noise`) are needed: the noise is then
    drawn afresh every epoch (:class:`ResampledNoiseData`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.ckpt", "summary.json"):  # an earlier training's: not this one's
        (out / name).unlink(missing_ok=True)
    pl.seed_everything(settings.seed, workers=True)
    if settings.resample_noise:
        if expected is None or transform is None or add_noise is None:
            raise ValueError(
                "training.resample_noise needs the noise-free training spectra, "
                "the preprocessing transform and the noise model"
            )
        data = ResampledNoiseData(
            str(train),
            str(validation),
            expected,
            transform,
            add_noise,
            n_train,
            settings.batch_size,
            settings.seed,
        )
    else:
        data = ProcessedData(
            str(train), str(validation), n_train, settings.batch_size, settings.seed
        )
    model_kind(model["kind"])
    architecture = {
        "kind": model["kind"],
        "architecture": dict(model["architecture"]),
        "input_length": data.input_length,
        "n_targets": data.n_targets,
    }
    fingerprint_data = {
        "train": _data_fingerprint(train),
        "validation": _data_fingerprint(validation),
    }
    stages = []
    fingerprint = None
    for k, lr in enumerate(settings.learning_rates):
        stage_dir = out / f"stage{k + 1}"
        fingerprint = _stage_fingerprint(
            fingerprint, k + 1, lr, n_train, architecture, settings, fingerprint_data
        )
        _clear_stale_stage(stage_dir, fingerprint)
        done = _stage_result(stage_dir)
        data.stage = k
        if done is None:
            done = _train_stage(
                stage_dir,
                k,
                data,
                architecture,
                lr,
                stages[-1] if stages else None,
                settings,
                callbacks,
            )
        stages.append(done)
    overall = min(stages, key=lambda s: s["best_val_loss"])
    with atomic_path(out / "model.ckpt") as tmp:
        shutil.copyfile(overall["best_checkpoint"], tmp)
    summary = {
        "n_train": n_train,
        "architecture": architecture,
        "settings": _settings_dict(settings),
        "stages": stages,
        "best_val_loss": overall["best_val_loss"],
        "train_seconds": sum(s["seconds"] for s in stages),
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


def _checkpoint_epoch(path: Path) -> int | None:
    """The epoch of a stage's last checkpoint; None, after removing the stage's checkpoints
    and log, when it cannot be read (truncated by a kill during a copy across file systems,
    or damaged): the stage is then trained afresh, to the same result."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    except Exception as exc:  # noqa: BLE001 (any unreadable file: pickle, zip, EOF, key errors)
        print(
            f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); the stage is "
            "trained afresh (to the same result: training is a function of its seed)",
            file=sys.stderr,
        )
        shutil.rmtree(path.parent)
        (path.parent.parent / "metrics.csv").unlink(missing_ok=True)
        return None


def _train_stage(
    stage_dir: Path,
    stage: int,
    data: ProcessedData,
    architecture: dict,
    lr: float,
    previous: dict | None,
    settings: TrainingSettings,
    callbacks: Sequence[pl.Callback],
) -> dict:
    """Train (or resume) stage ``stage`` (from 0) in ``stage_dir``, from the best weights of
    the ``previous`` stage's result (None: a new network); return the stage's result, also
    written to ``done.json``.  Raises :class:`TrainingDiverged` for a diverging training."""
    previous_best = previous["best_checkpoint"] if previous else None
    last = stage_dir / "checkpoints" / "last.ckpt"
    # the epoch of the checkpoint (written at the end of an epoch) the stage resumes from
    last_epoch = _checkpoint_epoch(last) if last.exists() else None
    resume = str(last) if last_epoch is not None else None
    if previous_best is None:
        module = InverseModel(**architecture, lr=lr, weight_decay=settings.weight_decay)
    else:
        module = InverseModel.load_from_checkpoint(
            previous_best, lr=lr, weight_decay=settings.weight_decay
        )
    checkpoint = ModelCheckpoint(
        dirpath=stage_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    # with weight averaging, validation runs on the averaged weights and checkpoints hold
    # them as their state dict (the raw weights ride along for resuming)
    averaging = [EMAWeightAveraging(decay=settings.ema_decay)] if settings.ema_decay > 0 else []
    trainer = pl.Trainer(
        max_epochs=settings.epochs_per_stage,
        accelerator=settings.accelerator,
        devices=1,
        logger=_StageLogger(stage_dir, last_epoch),
        callbacks=[
            checkpoint,
            EarlyStopping(monitor="val_loss", mode="min", patience=settings.patience),
            *averaging,
            EpochSeeding(settings.seed, stage),
            _DivergenceCheck(
                stage + 1, settings.learning_rates, previous["best_val_loss"] if previous else None
            ),
            *callbacks,
        ],
        reload_dataloaders_every_n_epochs=1 if settings.resample_noise else 0,
        deterministic="warn",
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=previous_best is None,
        log_every_n_steps=10,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training interrupted in {stage_dir}; rerun to resume")
    result = {
        "learning_rate": lr,
        "epochs": trainer.current_epoch,
        "best_val_loss": float(checkpoint.best_model_score),
        "best_checkpoint": str(checkpoint.best_model_path),
        "seconds": time.perf_counter() - t0,
        "device": str(trainer.strategy.root_device),
    }
    with atomic_path(stage_dir / "done.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return result


def predict(
    checkpoints: str | Path | Sequence[str | Path],
    processed: str | Path | xr.Dataset,
    transform: SpectrumTransform,
    batch_size: int = 1024,
) -> xr.Dataset:
    """Predictions for every spectrum of a preprocessed split, in physical units, with the
    true targets for comparison (the format of the model's kind, e.g. mixture parameters,
    mean and standard deviation for the MDN).

    Several checkpoints (a deep ensemble of K networks of the same kind) are pooled by the
    kind (the MDN: one mixture of all their components, each network weighted 1/K).
    ``processed``: a file, or a dataset with ``x`` [sample, feature] and ``params``
    [sample, param] (NaN where the truth is unknown, e.g. measured spectra).
    """
    if isinstance(checkpoints, str | Path):
        checkpoints = [checkpoints]
    if not checkpoints:
        raise ValueError("checkpoints: expected at least one")
    ds = processed if isinstance(processed, xr.Dataset) else read_dataset(processed)
    loader = DataLoader(TensorDataset(torch.as_tensor(ds["x"].values)), batch_size=batch_size)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    members, kinds, seconds = [], [], []
    for checkpoint in checkpoints:
        module = InverseModel.load_from_checkpoint(str(checkpoint), map_location="cpu")
        kinds.append(module.hparams.kind)
        started = time.perf_counter()
        batches = trainer.predict(module, dataloaders=loader)
        seconds.append(time.perf_counter() - started)
        members.append(
            tuple(torch.cat(t) for t in zip(*batches, strict=True))
            if isinstance(batches[0], tuple)
            else torch.cat(batches)
        )
    formats = {model_kind(k).prediction.__func__ for k in kinds}
    if len(formats) != 1:
        raise ValueError(
            f"checkpoints: an ensemble needs models of one prediction format, got "
            f"{sorted(set(kinds))}"
        )
    kind = model_kind(kinds[0])
    out = kind.prediction(members, ds, transform.target_min, transform.target_max)
    if "member" in out.dims:
        out = out.assign_coords(
            member_kind=("member", kinds),
            member_seconds=("member", np.asarray(seconds)),
        )
    labels = list(dict.fromkeys(model_kind(k).label for k in kinds))
    out.attrs = {
        **ds.attrs,
        "checkpoint": ", ".join(str(c) for c in checkpoints),
        "ensemble": len(members),
        "model_kind": kind.name if len(set(kinds)) == 1 else "+".join(dict.fromkeys(kinds)),
        "model_label": " + ".join(labels),
        "prediction_seconds": float(sum(seconds)),
    }
    return out


def median_relative_error(predictions: xr.Dataset) -> dict[str, float]:
    """Median over the spectra of |mean − true| / true, per parameter."""
    rel = np.abs(predictions["mean"].values - predictions["true"].values) / np.abs(
        predictions["true"].values
    )
    return dict(
        zip(predictions["param"].values.tolist(), np.median(rel, axis=0).tolist(), strict=True)
    )
