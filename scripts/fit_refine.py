"""Snakemake adapter: batched Levenberg-Marquardt refinement from the MDN means."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import FitSettings, fitted_spectra, refinement_fits

cfg = start(snakemake)  # noqa: F821
settings = FitSettings.from_config(snakemake.config)  # noqa: F821
test = fitted_spectra(read_dataset(snakemake.input.test), settings)  # noqa: F821
x0 = fitted_spectra(read_dataset(snakemake.input.predictions), settings)["mean"].values  # noqa: F821
fit = refinement_fits(cfg, test, SpectrumTransform.load(snakemake.input.transform),  # noqa: F821
                      x0, settings)
write_dataset(fit, snakemake.output[0])  # noqa: F821
logging.info("refinement: %d spectra, median chi2 %.1f (dof %d), %.0f simulations per "
             "spectrum, %.1f s", fit.sizes["sample"], float(fit["chi2"].median()),
             fit.attrs["dof"], float(fit["n_simulations"].mean()), fit.attrs["wall_seconds"])
