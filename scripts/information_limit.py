"""Snakemake adapter: Cramér-Rao bounds of the fitted test spectra at their true
parameters (the information limit of the measurement)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.evaluation.tables import information_table
from specinv.fitting.runner import fitted_spectra, information_limit

plan = start(snakemake)
test = fitted_spectra(read_dataset(snakemake.input.test), plan.fitting)
bounds = information_limit(
    plan.dataset,
    test,
    SpectrumTransform.load(snakemake.input.transform),
    plan.fitting,
)
write_dataset(bounds, snakemake.output[0])
logging.info(
    "Cramer-Rao bounds of %d spectra in %.1f s:\n%s",
    bounds.sizes["sample"],
    bounds.attrs["wall_seconds"],
    information_table(bounds).to_string(),
)
