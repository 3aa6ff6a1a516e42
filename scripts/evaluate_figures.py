"""Snakemake adapter: the paper's figures (Figs. 4-10, χ² distributions, an example fit)."""

import torch
from _common import start

from specinv.data import SpectrumTransform, read_dataset
from specinv.evaluation import roi_mask
from specinv.evaluation.figures import paper_figures
from specinv.evaluation.tables import methods_on_fitted_spectra, mre_table

cfg = start(snakemake)  # noqa: F821
inp, par, out = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
predictions = {n: read_dataset(p) for n, p in zip(par.sizes, inp.predictions, strict=True)}
mdn = read_dataset(inp.mdn[par.sizes.index(par.model_size)])
fits = {m: read_dataset(p) for m, p in zip(par.methods, inp.fits, strict=True)}
by_label = methods_on_fitted_spectra(mdn, fits, par.model_size)
test = read_dataset(inp.test)
transform = SpectrumTransform.load(inp.transform)
roi = roi_mask(test.sizes["channel"], transform.settings.first_channel,
               transform.settings.merge, transform.kept_bins)
technique = cfg.build_technique()


def simulate(params):
    with torch.no_grad():
        return technique.simulate(torch.as_tensor(params)).double().cpu().numpy()


outputs = {n: [getattr(out, f"{n.replace('-', '_')}_{ext}") for ext in ("png", "pdf")]
           for n in par.names}
ev = snakemake.config["evaluation"]  # noqa: F821
paper_figures(predictions, mre_table(predictions), by_label, test, roi, simulate,
              par.model_size, outputs, name=cfg.name, alpha=ev["alpha"],
              ratio_samples=ev["ratio_samples"], seed=ev["seed"])
