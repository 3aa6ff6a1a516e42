"""Snakemake adapter: fit the preprocessing on the training split."""

import logging

from _common import start

from specinv.data import SpectrumTransform, preprocess_settings, read_dataset

start(snakemake)  # noqa: F821
settings = preprocess_settings(snakemake.config)  # noqa: F821
train = read_dataset(snakemake.input[0])  # noqa: F821
transform = SpectrumTransform.fit(train["counts"].values, train["params"].values,
                                  list(train["param"].values.astype(str)), settings)
transform.save(snakemake.output[0])  # noqa: F821
logging.info("kept %d of %d merged bins (channels %d..%d)", len(transform.kept_bins),
             transform.fit_info["n_bins"], transform.bin_channels().min(),
             transform.bin_channels().max() + settings.merge - 1)
