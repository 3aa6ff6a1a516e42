"""Snakemake adapter: Autofit or network + Autofit (lockstep Nelder-Mead) of one shard."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import autofit_start, fitted_spectra, nelder_mead_fits

plan = start(snakemake)
cfg, settings = plan.dataset, plan.fitting
method, shard = snakemake.wildcards.method, int(snakemake.wildcards.shard)
test = read_dataset(snakemake.input.test)
part = fitted_spectra(test, settings, shard, method=method)
if method != "autofit":
    predictions = read_dataset(snakemake.input.predictions)
    x0 = fitted_spectra(predictions, settings, shard, method=method)["mean"].values
else:
    train_mean = (
        read_dataset(snakemake.input.train)["params"].values.mean(axis=0)
        if settings.autofit_start == "mean"
        else None
    )
    x0 = autofit_start(cfg, settings, part.sizes["sample"], train_mean)
fit = nelder_mead_fits(
    method,
    cfg,
    part,
    SpectrumTransform.load(snakemake.input.transform),
    x0,
    settings,
)
write_dataset(fit, snakemake.output[0])
logging.info(
    "%s shard %d/%d: %d spectra, median chi2 %.1f (dof %d), %.0f simulations per spectrum, %.1f s",
    method,
    shard + 1,
    settings.shards,
    fit.sizes["sample"],
    float(fit["chi2"].median()),
    fit.attrs["dof"],
    float(fit["n_simulations"].mean()),
    fit.attrs["wall_seconds"],
)
