"""Snakemake adapter: simulate one shard of spectra."""

import logging
import time

from _common import start

from specinv.data import read_dataset, simulate_shard, write_dataset

cfg = start(snakemake).dataset
shard = int(snakemake.wildcards.shard)
t0 = time.perf_counter()
ds = simulate_shard(cfg, read_dataset(snakemake.input[0]), shard)
elapsed = time.perf_counter() - t0
write_dataset(ds, snakemake.output[0])
logging.info(
    "shard %d/%d: %d spectra in %.1f s (%.0f spectra/s) on %s",
    shard + 1,
    cfg.shards,
    ds.sizes["sample"],
    elapsed,
    ds.sizes["sample"] / max(elapsed, 1e-9),
    cfg.device,
)
