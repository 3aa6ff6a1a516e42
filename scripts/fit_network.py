"""Snakemake adapter: back-simulate the network's estimates of the test spectra (χ² of
each)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import network_back_simulation

plan = start(snakemake)  # noqa: F821
fit = network_back_simulation(plan.dataset, read_dataset(snakemake.input.test),  # noqa: F821
                              SpectrumTransform.load(snakemake.input.transform),  # noqa: F821
                              read_dataset(snakemake.input.predictions),  # noqa: F821
                              plan.fitting)
write_dataset(fit, snakemake.output[0])  # noqa: F821
logging.info("%s (n=%s): median chi2 %.1f over %d RoI channels, %d spectra in %.1f s",
             plan.label, snakemake.wildcards.n_train, float(fit["chi2"].median()),  # noqa: F821
             fit.attrs["dof"], fit.sizes["sample"], fit.attrs["wall_seconds"])
