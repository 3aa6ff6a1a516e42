"""Snakemake adapter: staged training of one MDN (one training-set size)."""

import json
import logging
from pathlib import Path

from _common import start

from specinv.data import SpectrumTransform, dataset_config, expected_spectra, read_dataset
from specinv.training import TrainingSettings, model_settings, train_staged

start(snakemake)  # noqa: F821
inp = snakemake.input  # noqa: F821
n_train = int(snakemake.wildcards.n_train)  # noqa: F821
settings = TrainingSettings.from_config(snakemake.config)  # noqa: F821
expected = transform = None
if settings.resample_noise:
    # noise-free spectra of the training samples, for noise drawn afresh every epoch
    cfg = dataset_config(snakemake.config)  # noqa: F821
    if cfg.noise != "poisson":
        raise ValueError(f"training.resample_noise: needs data.noise: poisson, got {cfg.noise!r}")
    params = read_dataset(inp.raw_train)["params"].values[:n_train]
    expected = expected_spectra(cfg.build_technique(), params, cfg.batch_size)
    transform = SpectrumTransform.load(inp.transform)
summary = train_staged(inp.train, inp.validation, Path(snakemake.output.model).parent,  # noqa: F821
                       n_train, model_settings(snakemake.config), settings,  # noqa: F821
                       expected=expected, transform=transform)
logging.info("n_train=%d: best validation loss %.4f after %.0f s; stages %s", n_train,
             summary["best_val_loss"], summary["train_seconds"],
             json.dumps([(s["epochs"], round(s["best_val_loss"], 4)) for s in summary["stages"]]))
