"""Shared set-up of the Snakemake script adapters: log file, threads, dataset config."""

from __future__ import annotations

import logging
import sys


def start(snakemake):
    """Send stdout/stderr to the rule's log, set torch's threads; return the dataset config."""
    log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 (lives until exit)
    sys.stdout = sys.stderr = log
    logging.basicConfig(stream=log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    from specinv.data import dataset_config

    return dataset_config(snakemake.config)
