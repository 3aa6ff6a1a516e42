"""Snakemake adapter: staged training of one MDN (one training-set size)."""

import json
import logging
from pathlib import Path

from _common import start

from specinv.training import TrainingSettings, model_settings, train_staged

start(snakemake)  # noqa: F821
n_train = int(snakemake.wildcards.n_train)  # noqa: F821
summary = train_staged(snakemake.input.train, snakemake.input.validation,  # noqa: F821
                       Path(snakemake.output.model).parent, n_train,  # noqa: F821
                       model_settings(snakemake.config),  # noqa: F821
                       TrainingSettings.from_config(snakemake.config))  # noqa: F821
logging.info("n_train=%d: best validation loss %.4f after %.0f s; stages %s", n_train,
             summary["best_val_loss"], summary["train_seconds"],
             json.dumps([(s["epochs"], round(s["best_val_loss"], 4)) for s in summary["stages"]]))
