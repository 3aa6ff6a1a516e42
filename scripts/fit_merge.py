"""Snakemake adapter: merge the shards of one fit method."""

import logging

from _common import start

from specinv.data import read_dataset, write_dataset
from specinv.fitting.runner import merge_fit_shards

start(snakemake)
merged = merge_fit_shards([read_dataset(p) for p in snakemake.input])
write_dataset(merged, snakemake.output[0])
logging.info(
    "%s: %d spectra from %d shards",
    merged.attrs["method"],
    merged.sizes["sample"],
    len(snakemake.input),
)
