"""Snakemake adapter: batched Levenberg-Marquardt refinement from the network's estimates
(or from network + Autofit's results)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import fitted_spectra, refinement_fits

plan = start(snakemake)
settings = plan.fitting
test = fitted_spectra(read_dataset(snakemake.input.test), settings)
network = (
    fitted_spectra(read_dataset(snakemake.input.predictions), settings)
    if "predictions" in snakemake.input.keys()
    else None
)
if "start" in snakemake.input.keys():  # fitting.refine_from: ml_autofit
    start_fit = read_dataset(snakemake.input.start)
    x0 = start_fit["estimate"].values
else:
    start_fit = None
    x0 = network["mean"].values
fit = refinement_fits(
    plan.dataset,
    test,
    SpectrumTransform.load(snakemake.input.transform),
    x0,
    settings,
    method=snakemake.params.method,
    start_fit=start_fit,
    prior=(network["mean"].values, network["std"].values)
    if settings.refine_prior == "network"
    else None,
)
write_dataset(fit, snakemake.output[0])
logging.info(
    "refinement: %d spectra, median chi2 %.1f (dof %d), %.0f simulations per spectrum, %.1f s",
    fit.sizes["sample"],
    float(fit["chi2"].median()),
    fit.attrs["dof"],
    float(fit["n_simulations"].mean()),
    fit.attrs["wall_seconds"],
)
