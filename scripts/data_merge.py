"""Snakemake adapter: merge the simulated shards into one dataset."""

import logging

from _common import start

from specinv.data import merge_shards, write_dataset

start(snakemake)  # noqa: F821
merged = merge_shards(list(snakemake.input))  # noqa: F821
write_dataset(merged, snakemake.output[0])  # noqa: F821
logging.info("merged %d shards: %d spectra", len(snakemake.input), merged.sizes["sample"])  # noqa: F821
