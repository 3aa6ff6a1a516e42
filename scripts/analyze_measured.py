"""Snakemake adapter: the measured spectra of ``measured.spectra`` analysed with the run's
networks (the technique's :meth:`measured_analysis`, e.g. ``specinv rbs analyze``)."""

from pathlib import Path

from _common import start

from specinv.techniques import technique_class

plan = start(snakemake)
analysis = technique_class(plan.dataset.technique).measured_analysis()
settings = plan.measured
summary = analysis(
    snakemake.params.results,
    list(snakemake.input.spectra),
    Path(snakemake.output[0]).parent,
    size=settings["size"],
    refine=settings["refine"],
    alpha=settings["alpha"],
    figures=settings["figures"],
    progress=False,
)
print(summary)
