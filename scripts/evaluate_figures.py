"""Snakemake adapter: the evaluation's figures (regression: the paper's Figs. 4-10, χ²
distributions and an example fit, the accuracy figures of Boulle & Debelle 2023 (Figs. 3
and 7) and, for a technique with depth profiles, its Figs. 1 and 4; multilabel:
classification scores)."""

import numpy as np
import torch
from _common import start

from specinv.data import SpectrumTransform, read_dataset
from specinv.evaluation import roi_mask
from specinv.evaluation.accuracy_figures import accuracy_figures, profile_figure
from specinv.evaluation.classification import (
    plot_classification,
    plot_prediction_examples,
    resolve_threshold,
)
from specinv.evaluation.figures import paper_figures
from specinv.evaluation.tables import methods_on_fitted_spectra, mre_table

plan = start(snakemake)
inp, par, out = snakemake.input, snakemake.params, snakemake.output
ev = plan.config["evaluation"]
outputs = {n: [getattr(out, f"{n}_{ext}") for ext in ("png", "pdf")] for n in par.names}
predictions = {n: read_dataset(p) for n, p in zip(par.sizes, inp.predictions, strict=True)}
if plan.regression:
    network = read_dataset(inp.network[par.sizes.index(par.model_size)])
    fits = {m: read_dataset(p) for m, p in zip(par.methods, inp.fits, strict=True)}
    by_label = methods_on_fitted_spectra(network, fits, par.model_size)
    test = read_dataset(inp.test)
    transform = SpectrumTransform.load(inp.transform)
    roi = roi_mask(
        test.sizes["channel"],
        transform.settings.first_channel,
        transform.settings.merge,
        transform.kept_bins,
    )
    technique = plan.dataset.technique_instance
    low, high = technique.bounds()

    def simulate(params):
        with torch.no_grad():
            inside = torch.as_tensor(np.clip(params, low, high))
            return technique.simulate(inside).double().cpu().numpy()

    axis = technique.axis()
    paper_figures(
        predictions,
        mre_table(predictions),
        by_label,
        test,
        roi,
        simulate,
        par.model_size,
        outputs,
        name=plan.name,
        alpha=ev["alpha"],
        ratio_samples=ev["ratio_samples"],
        seed=ev["seed"],
        axis=(axis.coordinate, axis.label),
    )
    accuracy_figures(
        predictions, par.model_size, technique, outputs, name=plan.name, seed=ev["seed"]
    )
    if "profile_examples" in outputs:
        # the network's estimate and its refinement, on the spectra the refinement fitted
        refine = f"{plan.kind}_refine"
        refined = next(k for k, ds in by_label.items() if ds.attrs.get("method") == refine)
        estimates = {f"{plan.label}{par.model_size}": network, refined: fits[refine]}
        profile_figure(
            estimates, test, technique, simulate, outputs["profile_examples"], name=plan.name
        )
else:
    validation = {n: read_dataset(p) for n, p in zip(par.sizes, inp.validation, strict=True)}
    plot_classification(
        predictions,
        par.model_size,
        outputs["classification_vs_training_size"],
        outputs["label_scores"],
        threshold=ev["threshold"],
        title=f"{plan.name}: {plan.label}",
        validation=validation,
    )
    axis = plan.dataset.technique_instance.axis()
    plot_prediction_examples(
        read_dataset(inp.test),
        predictions[par.model_size],
        resolve_threshold(ev["threshold"], validation.get(par.model_size)),
        outputs["prediction_examples"],
        (axis.coordinate, axis.label),
        seed=ev["seed"],
        title=f"{plan.name}: {plan.label} ({par.model_size} training spectra)",
    )
