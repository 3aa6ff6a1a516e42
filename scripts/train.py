"""Snakemake adapter: staged training of one MDN (one training-set size, one member of the
ensemble)."""

import json
import logging
from pathlib import Path

from _common import start

from specinv.data import SpectrumTransform
from specinv.training import (
    TrainingSettings,
    model_settings,
    noise_free_training_spectra,
    train_staged,
)

start(snakemake)  # noqa: F821
inp = snakemake.input  # noqa: F821
n_train = int(snakemake.wildcards.n_train)  # noqa: F821
member = int(snakemake.wildcards.member)  # noqa: F821
settings = TrainingSettings.from_config(snakemake.config).member(member)  # noqa: F821
expected = transform = None
if settings.resample_noise:
    expected = noise_free_training_spectra(snakemake.config, inp.raw_train, n_train)  # noqa: F821
    transform = SpectrumTransform.load(inp.transform)
summary = train_staged(inp.train, inp.validation, Path(snakemake.output.model).parent,  # noqa: F821
                       n_train, model_settings(snakemake.config), settings,  # noqa: F821
                       expected=expected, transform=transform)
logging.info("n_train=%d, member %d: best validation loss %.4f after %.0f s; stages %s", n_train,
             member, summary["best_val_loss"], summary["train_seconds"],
             json.dumps([(s["epochs"], round(s["best_val_loss"], 4)) for s in summary["stages"]]))
