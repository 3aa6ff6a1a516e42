"""Snakemake adapter: simulate one shard of spectra."""

import logging
import time

from _common import start

from specinv.data import read_dataset, simulate_shard, write_dataset

cfg = start(snakemake).dataset  # noqa: F821
shard = int(snakemake.wildcards.shard)  # noqa: F821
t0 = time.perf_counter()
ds = simulate_shard(cfg, read_dataset(snakemake.input[0]), shard)  # noqa: F821
elapsed = time.perf_counter() - t0
write_dataset(ds, snakemake.output[0])  # noqa: F821
logging.info("shard %d/%d: %d spectra in %.1f s (%.0f spectra/s) on %s", shard + 1, cfg.shards,
             ds.sizes["sample"], elapsed, ds.sizes["sample"] / max(elapsed, 1e-9), cfg.device)
