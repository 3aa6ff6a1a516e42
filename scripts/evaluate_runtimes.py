"""Snakemake adapter: the run-time table (the paper's Table 1) from the jobs' benchmark
files."""

import logging

from _common import start

from specinv.evaluation.tables import hardware_description, runtime_table, write_table

plan = start(snakemake)
table = runtime_table(
    snakemake.params.stages,
    hardware_description(),
    plan.config["evaluation"]["paper_runtimes_h"],
)
write_table(table, snakemake.output[0])
logging.info("\n%s", table.to_string())
