"""Snakemake adapter: fit the preprocessing on the training split."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset
from specinv.data.preprocess import training_targets

settings = start(snakemake).preprocessing
train = read_dataset(snakemake.input[0])
targets, names, scaled = training_targets(train)
transform = SpectrumTransform.fit(
    train["counts"].values, targets, names, settings, scale_targets=scaled
)
transform.save(snakemake.output[0])
logging.info(
    "kept %d of %d merged bins (channels %d..%d)",
    len(transform.kept_bins),
    transform.fit_info["n_bins"],
    transform.bin_channels().min(),
    transform.bin_channels().max() + settings.merge - 1,
)
