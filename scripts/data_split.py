"""Snakemake adapter: write the train, validation and test splits."""

import logging

from _common import start

from specinv.data import SPLITS, read_dataset, split_dataset, write_dataset

start(snakemake)
merged = read_dataset(snakemake.input[0])
for split, path in zip(SPLITS, snakemake.output, strict=True):
    part = split_dataset(merged, split)
    write_dataset(part, path)
    logging.info("%s: %d spectra -> %s", split, part.sizes["sample"], path)
