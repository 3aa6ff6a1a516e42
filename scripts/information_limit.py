"""Snakemake adapter: Cramér-Rao bounds of the fitted test spectra at their true
parameters (the information limit of the measurement)."""

import logging

import numpy as np
from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import FitSettings, fitted_spectra, information_limit

cfg = start(snakemake)  # noqa: F821
settings = FitSettings.from_config(snakemake.config)  # noqa: F821
test = fitted_spectra(read_dataset(snakemake.input.test), settings)  # noqa: F821
bounds = information_limit(cfg, test, SpectrumTransform.load(snakemake.input.transform),  # noqa: F821
                           settings)
write_dataset(bounds, snakemake.output[0])  # noqa: F821
relative = np.median(bounds["crlb_std"].values / bounds["true"].values, axis=0)
for name, value in zip(bounds["param"].values, relative, strict=True):
    logging.info("Cramer-Rao bound %s: median relative std %.4g", name, value)
logging.info("%d spectra in %.1f s", bounds.sizes["sample"], bounds.attrs["wall_seconds"])
