"""Snakemake adapter: merge the simulated shards into one dataset."""

import logging

from _common import start

from specinv.data import merge_shards, write_dataset

start(snakemake)
merged = merge_shards(list(snakemake.input), remove_corrupt=True)
write_dataset(merged, snakemake.output[0])
logging.info("merged %d shards: %d spectra", len(snakemake.input), merged.sizes["sample"])
