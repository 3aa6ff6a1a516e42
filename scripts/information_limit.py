"""Snakemake adapter: Cramér-Rao bounds of the fitted test spectra at their true
parameters (the information limit of the measurement)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.evaluation.tables import information_table
from specinv.fitting.runner import FitSettings, fitted_spectra, information_limit

cfg = start(snakemake)  # noqa: F821
settings = FitSettings.from_config(snakemake.config)  # noqa: F821
test = fitted_spectra(read_dataset(snakemake.input.test), settings)  # noqa: F821
bounds = information_limit(cfg, test, SpectrumTransform.load(snakemake.input.transform),  # noqa: F821
                           settings)
write_dataset(bounds, snakemake.output[0])  # noqa: F821
logging.info("Cramer-Rao bounds of %d spectra in %.1f s:\n%s", bounds.sizes["sample"],
             bounds.attrs["wall_seconds"], information_table(bounds).to_string())
