"""Snakemake adapter: draw the parameters of every spectrum."""

import logging

from _common import start

from specinv.data import sample_parameters, write_dataset

cfg = start(snakemake).dataset
ds = sample_parameters(cfg)
write_dataset(ds, snakemake.output[0])
logging.info(
    "%d parameter sets of %d parameters (seed %d, data hash %s)",
    cfg.n_samples,
    ds.sizes["param"],
    cfg.seed,
    cfg.data_hash(),
)
