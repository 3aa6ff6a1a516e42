"""Snakemake adapter: the reference posterior (MCMC) of the first fitted test spectra,
started around the refinement's estimates."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.posterior import reference_posterior

plan = start(snakemake)
posterior = reference_posterior(
    plan.dataset,
    read_dataset(snakemake.input.test),
    SpectrumTransform.load(snakemake.input.transform),
    read_dataset(snakemake.input.start),
    plan.fitting,
)
write_dataset(posterior, snakemake.output[0])
logging.info(
    "reference posterior of %d spectra (%d walkers x %d steps) in %.1f s; acceptance "
    "median %.2f, autocorrelation time median %.1f steps (largest %.1f), %d spectra with "
    "walkers that did not move after the burn-in",
    posterior.sizes["sample"],
    posterior.attrs["walkers"],
    posterior.attrs["steps"],
    posterior.attrs["wall_seconds"],
    float(posterior["acceptance"].median()),
    float(posterior["autocorr_steps"].median()),
    float(posterior["autocorr_steps"].max()),
    int((posterior["stuck_walkers"] > 0).sum()),
)
