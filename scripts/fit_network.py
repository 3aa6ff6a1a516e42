"""Snakemake adapter: back-simulate the network's estimates of the test spectra (χ² of
each)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import network_back_simulation

plan = start(snakemake)
fit = network_back_simulation(
    plan.dataset,
    read_dataset(snakemake.input.test),
    SpectrumTransform.load(snakemake.input.transform),
    read_dataset(snakemake.input.predictions),
    plan.fitting,
)
write_dataset(fit, snakemake.output[0])
logging.info(
    "%s (n=%s): median chi2 %.1f over %d RoI channels, %d spectra in %.1f s",
    plan.label,
    snakemake.wildcards.n_train,
    float(fit["chi2"].median()),
    fit.attrs["dof"],
    fit.sizes["sample"],
    fit.attrs["wall_seconds"],
)
