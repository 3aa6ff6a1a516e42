"""Snakemake adapter: back-simulate the MDN means of the test spectra (χ² of each)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import FitSettings, mdn_back_simulation

cfg = start(snakemake)  # noqa: F821
fit = mdn_back_simulation(cfg, read_dataset(snakemake.input.test),  # noqa: F821
                          SpectrumTransform.load(snakemake.input.transform),  # noqa: F821
                          read_dataset(snakemake.input.predictions),  # noqa: F821
                          FitSettings.from_config(snakemake.config))  # noqa: F821
write_dataset(fit, snakemake.output[0])  # noqa: F821
logging.info("MDN (n=%s): median chi2 %.1f over %d RoI channels, %d spectra in %.1f s",
             snakemake.wildcards.n_train, float(fit["chi2"].median()),  # noqa: F821
             fit.attrs["dof"], fit.sizes["sample"], fit.attrs["wall_seconds"])
