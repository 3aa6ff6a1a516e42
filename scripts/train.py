"""Snakemake adapter: staged training of one network (one training-set size, one member of
the ensemble).  A training that diverges (or another bad setting) ends the job with a
one-line error."""

import json
import logging
from pathlib import Path

from _common import exit_on_error, start

from specinv.config import ConfigError
from specinv.data import SpectrumTransform
from specinv.training import noise_free_training_spectra, technique_noise, train_staged

plan = start(snakemake)
inp = snakemake.input
n_train = int(snakemake.wildcards.n_train)
member = int(snakemake.wildcards.member)
settings = plan.training.member(member)
try:
    resampled = {}
    if settings.resample_noise:
        resampled = {
            "expected": noise_free_training_spectra(plan.dataset, inp.raw_train, n_train),
            "transform": SpectrumTransform.load(inp.transform),
            "add_noise": technique_noise(plan.dataset),
        }
    summary = train_staged(
        inp.train,
        inp.validation,
        Path(snakemake.output.model).parent,
        n_train,
        plan.member_model(member),
        settings,
        **resampled,
    )
except ConfigError as error:  # e.g. TrainingDiverged
    exit_on_error(error)
logging.info(
    "%s n_train=%d, member %d: best validation loss %.4f after %.0f s; stages %s",
    plan.label,
    n_train,
    member,
    summary["best_val_loss"],
    summary["train_seconds"],
    json.dumps([(s["epochs"], round(s["best_val_loss"], 4)) for s in summary["stages"]]),
)
