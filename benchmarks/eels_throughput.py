"""Throughput of the EELS simulator and of the paper's networks on this machine.

Simulation: spectra per second at one thread (parameters drawn from the default ``eels``
section, i.e. the paper's Table 1).  Networks: training (forward, backward and an AdamW
step on batches of 64) and inference spectra per second at one thread, for the paper's
U-Net, ViT and VGG-11 (``architecture: annys2023``) and the narrower U-Net of
config/paper/eels.yaml; the paper's GPU inference times are in its Table 2 (0.1-0.6 s,
test set size not stated).

Usage::

    python benchmarks/eels_throughput.py [--spectra 500] [--steps 3] [--batch 64]
        [--networks vit unet vgg]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from specinv.config.schema import validate
from specinv.models import MODELS, model_spec
from specinv.techniques import technique_class

NETWORKS = (
    ("vit", {}),
    ("unet", {}),
    ("unet", {"base_filters": 16}),
    ("vgg", {}),
)


def simulation_rate(n: int) -> float:
    cls = technique_class("eels")
    section: dict = {}
    validate(section, cls.config_schema, "eels")
    technique = cls.from_config(section)
    params = technique.sample(np.random.default_rng(0).random((n, technique.n_uniforms)))
    technique.simulate(params[:8])  # tables built, caches warm
    started = time.perf_counter()
    technique.simulate(params)
    return n / (time.perf_counter() - started)


def network_rates(
    kind: str, overrides: dict, steps: int, batch: int = 64
) -> tuple[int, float, float]:
    spec = model_spec({"kind": kind, "architecture": "annys2023", **overrides}, "multilabel")
    net = MODELS[kind].build(spec["architecture"], 3072, 80)
    parameters = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(batch, 3072)
    y = (torch.rand(batch, 80) < 0.05).float()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        started = time.perf_counter()
        optimizer.zero_grad()
        MODELS[kind].loss(net(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    train = batch / np.median(times[1:])
    net.eval()
    with torch.no_grad():
        net(x)
        started = time.perf_counter()
        for _ in range(steps):
            net(x)
        infer = batch * steps / (time.perf_counter() - started)
    return parameters, train, infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spectra", type=int, default=500)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--networks", nargs="*", default=None, help="kinds to time (default: all of NETWORKS)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, torch {torch.__version__}, 1 thread")
    print(f"simulation: {simulation_rate(args.spectra):.0f} spectra/s")
    print("| network | parameters | training spectra/s | inference spectra/s |")
    print("|---|---|---|---|")
    for kind, overrides in NETWORKS:
        if args.networks is not None and kind not in args.networks:
            continue
        n, train, infer = network_rates(kind, overrides, args.steps, args.batch)
        name = f"{kind} annys2023" + "".join(f", {k} {v}" for k, v in overrides.items())
        print(f"| {name} | {n / 1e6:.1f} M | {train:.0f} | {infer:.0f} |", flush=True)


if __name__ == "__main__":
    main()
