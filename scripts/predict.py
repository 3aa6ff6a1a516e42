"""Snakemake adapter: the network's predictions for the test split, in physical units (an
ensemble's networks pooled)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, write_dataset
from specinv.evaluation.classification import classification_tables
from specinv.training import median_relative_error, predict

plan = start(snakemake)
transform = SpectrumTransform.load(snakemake.input.transform)
predictions = predict(list(snakemake.input.model), snakemake.input.test, transform)
write_dataset(predictions, snakemake.output[0])
if plan.regression:
    for name, mre in median_relative_error(predictions).items():
        logging.info("median relative error %s: %.4f", name, mre)
else:
    n = int(snakemake.wildcards.n_train)
    threshold = plan.config["evaluation"]["threshold"]
    logging.info("\n%s", classification_tables({n: predictions}, n, threshold)["summary"])
