"""Throughput of the batched XRD simulator (curves per second), beside the paper's.

Boulle & Debelle (2023) generated 1.5e6 curves in 2.5 h on 96 CPU cores, 1.74 curves per
second per core.  This script simulates curves of a configuration's ``xrd`` section
(default: config/paper/xrd_CNN2.yaml: YSZ 400, 1001 points, 60 slices), sampled from its
prior, at 1 thread and at every core, and prints curves per second (per core at 1 thread)
and the ratio to the paper's rate per core.

Usage::

    python benchmarks/xrd_throughput.py [--config FILE] [--batch 500] [--repeat 3]
        [--dtype float64|float32] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from specinv.config.schema import validate
from specinv.techniques import technique_class

#: the paper's rate: 1.5e6 curves in 2.5 h on 96 cores
PAPER_CURVES_PER_CORE_S = 1.5e6 / (2.5 * 3600 * 96)
REPO = Path(__file__).resolve().parents[1]


def technique_of(config_file: Path, device: str, dtype: torch.dtype, points: int | None):
    section = dict(yaml.safe_load(config_file.read_text())["xrd"])
    if points:
        section["axis"] = {**section.get("axis", {}), "points": points}
    cls = technique_class("xrd")
    validate(section, cls.config_schema, where="xrd")
    return cls.from_config(section, device=device, dtype=dtype)


def curves_per_second(technique, params: torch.Tensor, repeat: int) -> float:
    technique.simulate(params[:4])  # warm up
    best = float("inf")
    for _ in range(repeat):
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        technique.simulate(params)
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return len(params) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config/paper/xrd_CNN2.yaml")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--points", type=int, default=None, help="override the axis points")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    technique = technique_of(args.config, args.device, dtype, args.points)
    u = np.random.default_rng(0).random((args.batch, technique.n_uniforms))
    params = torch.as_tensor(technique.sample(u), dtype=dtype, device=args.device)
    cores = os.cpu_count() or 1
    print(
        f"{platform.processor() or platform.machine()}, {cores} cores, torch "
        f"{torch.__version__}, {args.device}, {args.dtype}; {args.config.name}: "
        f"{technique.n_channels} points, {technique.setup.n_slices} slices, batch {args.batch}"
    )
    print("| threads | curves/s | per core | × paper per core |")
    print("|---|---|---|---|")
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        rate = curves_per_second(technique, params, args.repeat)
        per_core = rate / threads
        print(
            f"| {threads} | {rate:.0f} | {per_core:.0f} | "
            f"{per_core / PAPER_CURVES_PER_CORE_S:.0f} |"
        )


if __name__ == "__main__":
    main()
