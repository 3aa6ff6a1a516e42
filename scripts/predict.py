"""Snakemake adapter: MDN predictions for the test split, in physical units (one mixture of
all the ensemble's networks)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, write_dataset
from specinv.training import median_relative_error, predict

start(snakemake)  # noqa: F821
transform = SpectrumTransform.load(snakemake.input.transform)  # noqa: F821
predictions = predict(list(snakemake.input.model), snakemake.input.test, transform)  # noqa: F821
write_dataset(predictions, snakemake.output[0])  # noqa: F821
for name, mre in median_relative_error(predictions).items():
    logging.info("median relative error %s: %.4f", name, mre)
