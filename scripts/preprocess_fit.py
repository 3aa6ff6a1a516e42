"""Snakemake adapter: fit the preprocessing on the training split."""

import logging

from _common import start

from specinv.data import PreprocessSettings, SpectrumTransform, read_dataset

start(snakemake)  # noqa: F821
p = snakemake.params.settings  # noqa: F821
settings = PreprocessSettings(first_channel=p["first_channel"], merge=p["merge"],
                              sigmas=p["sigmas"], savgol_window=p["savgol"]["window"],
                              savgol_polyorder=p["savgol"]["polyorder"])
train = read_dataset(snakemake.input[0])  # noqa: F821
transform = SpectrumTransform.fit(train["counts"].values, train["params"].values,
                                  list(train["param"].values.astype(str)), settings)
transform.save(snakemake.output[0])  # noqa: F821
logging.info("kept %d of %d merged bins (channels %d..%d)", len(transform.kept_bins),
             transform.fit_info["n_bins"], transform.bin_channels().min(),
             transform.bin_channels().max() + settings.merge - 1)
