"""Snakemake adapter: the run-time table (Table 1) from the jobs' benchmark files."""

import logging

from _common import start

from specinv.evaluation.tables import hardware_description, runtime_table, write_table

start(snakemake)  # noqa: F821
table = runtime_table(snakemake.params.stages, hardware_description(),  # noqa: F821
                      snakemake.config["evaluation"].get("paper_runtimes_h"))  # noqa: F821
write_table(table, snakemake.output[0])  # noqa: F821
logging.info("\n%s", table.to_string())
