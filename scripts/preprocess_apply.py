"""Snakemake adapter: apply the fitted preprocessing to one split."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.data.preprocess import processed_dataset

start(snakemake)
transform = SpectrumTransform.load(snakemake.input.transform)
raw = read_dataset(snakemake.input.data)
out = processed_dataset(raw, transform)
write_dataset(out, snakemake.output[0])
logging.info(
    "%s: %d spectra, %d features", raw.attrs.get("split"), out.sizes["sample"], out.sizes["feature"]
)
