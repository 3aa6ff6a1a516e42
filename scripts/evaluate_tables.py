"""Snakemake adapter: the paper's tables (Tables 2-6, the data of Figs. 4-7)."""

import logging

from _common import start

from specinv.data import read_dataset
from specinv.evaluation.tables import paper_tables, write_table

start(snakemake)  # noqa: F821
inp, par = snakemake.input, snakemake.params  # noqa: F821
tables = paper_tables(
    predictions={n: read_dataset(p) for n, p in zip(par.sizes, inp.predictions, strict=True)},
    mdn_fits={n: read_dataset(p) for n, p in zip(par.sizes, inp.mdn, strict=True)},
    fits={m: read_dataset(p) for m, p in zip(par.methods, inp.fits, strict=True)},
    model_size=par.model_size, alpha=snakemake.config["evaluation"]["alpha"],  # noqa: F821
    information=read_dataset(inp.information))
for name, table in tables.items():
    write_table(table, getattr(snakemake.output, name))  # noqa: F821
    logging.info("%s:\n%s", name, table.to_string(max_cols=12))
