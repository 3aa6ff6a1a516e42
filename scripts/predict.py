"""Snakemake adapter: the network's predictions for the test split (and, for a multi-label
task, the validation split that sets its threshold), in physical units (an ensemble's
networks pooled)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, write_dataset
from specinv.evaluation.classification import classification_tables
from specinv.training import median_relative_error, predict

plan = start(snakemake)
inp, out = snakemake.input, snakemake.output
transform = SpectrumTransform.load(inp.transform)
predictions = predict(list(inp.model), inp.test, transform)
write_dataset(predictions, out.test)
if plan.regression:
    for name, mre in median_relative_error(predictions).items():
        logging.info("median relative error %s: %.4f", name, mre)
else:
    validation = predict(list(inp.model), inp.validation, transform)
    write_dataset(validation, out.validation)
    n = int(snakemake.wildcards.n_train)
    tables = classification_tables(
        {n: predictions}, n, plan.config["evaluation"]["threshold"], {n: validation}
    )
    logging.info("\n%s\n%s", tables["summary"].to_string(), tables["models"].to_string())
