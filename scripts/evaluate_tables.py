"""Snakemake adapter: the evaluation's tables (regression: the paper's Tables 2-6, the data
of Figs. 4-7 and the information limit; multilabel: classification scores)."""

import logging

from _common import start

from specinv.data import read_dataset
from specinv.evaluation.classification import classification_tables
from specinv.evaluation.tables import paper_tables, write_table

plan = start(snakemake)
inp, par = snakemake.input, snakemake.params
ev = plan.config["evaluation"]
predictions = {n: read_dataset(p) for n, p in zip(par.sizes, inp.predictions, strict=True)}
if plan.regression:
    tables = paper_tables(
        predictions=predictions,
        network_fits={n: read_dataset(p) for n, p in zip(par.sizes, inp.network, strict=True)},
        fits={m: read_dataset(p) for m, p in zip(par.methods, inp.fits, strict=True)},
        model_size=par.model_size,
        alpha=ev["alpha"],
        information=read_dataset(inp.information),
        derived_errors=plan.dataset.technique_instance.derived_errors,
        posterior=read_dataset(inp.posterior) if "posterior" in inp.keys() else None,
    )
else:
    validation = {n: read_dataset(p) for n, p in zip(par.sizes, inp.validation, strict=True)}
    tables = classification_tables(predictions, par.model_size, ev["threshold"], validation)
    tables = {
        "classification": tables["summary"],
        "models": tables["models"],
        "labels": tables["labels"],
        "confusions": tables["confusions"],
    }
for name, table in tables.items():
    write_table(table, getattr(snakemake.output, name))
    logging.info("%s:\n%s", name, table.to_string(max_cols=12))
