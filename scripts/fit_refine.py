"""Snakemake adapter: batched Levenberg-Marquardt refinement from the network's estimates
(or from network + Autofit's results)."""

import logging

from _common import start

from specinv.data import SpectrumTransform, read_dataset, write_dataset
from specinv.fitting.runner import fitted_spectra, refinement_fits, refinement_start

plan = start(snakemake)
settings = plan.fitting
test = fitted_spectra(read_dataset(snakemake.input.test), settings)
inputs = snakemake.input.keys()
network = (
    fitted_spectra(read_dataset(snakemake.input.predictions), settings)
    if "predictions" in inputs
    else None
)
start_fit = read_dataset(snakemake.input.start) if "start" in inputs else None
x0, prior = refinement_start(settings, network, start_fit)
fit = refinement_fits(
    plan.dataset,
    test,
    SpectrumTransform.load(snakemake.input.transform),
    x0,
    settings,
    method=snakemake.params.method,
    start_fit=start_fit,
    prior=prior,
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
