"""Throughput of the batched RBS simulator, compared with JaBS.

Prints milliseconds per spectrum for batch sizes 1 and N on three samples: the reference
case A (2 layers W/D, 4 parameters), B (3 layers Li/C/O/F/Ni, 15 parameters) and a
5-layer, 8-element, 30-parameter sample like dataset C, and the ratio to JaBS's time per
spectrum measured on the same kind of machine (shared/reference/README.md).  Setup: 4He at
3000 keV, 165°, 1024 channels of 3 keV, 15 keV FWHM, cut-off 50 keV (the reference setup).
Areal densities are drawn uniformly in [50, 5000] TFU (the MDN paper's prior), so the
timings cover the whole parameter range, not one sample.  Like the ``specinv`` command and
the workflow's jobs, the script first makes glibc keep freed memory for reuse
(:func:`specinv.memory.keep_freed_memory`); ``--default-malloc`` measures without that.

Usage::

    python benchmarks/simulate_throughput.py [--batch 1000] [--device cpu|cuda]
        [--dtype float64|float32] [--repeat 3] [--profile] [--default-malloc]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from specinv.memory import keep_freed_memory
from specinv.physics.rbs import Detector, PhysicsOptions, RBSSimulator, Setup

# JaBS 0.7.6, default numerics, per noise-free spectrum on a 2-core machine of this kind
JABS_MS = {"A": 0.74, "B": 6.95, "C": 13.9}

SAMPLES = {
    "A": [["W", "D"], ["W", "D"]],
    "B": [["Li", "C", "O", "F", "Ni"]] * 3,
    "C": [["H", "Li", "C", "O", "Co", "Zr", "La", "Ta"]]
    + [["Li", "C", "O", "Zr", "La", "Ta"]] * 3
    + [["O", "Zr", "La", "Ta"]],
}


def reference_setup() -> Setup:
    return Setup(
        ion="4He",
        beam_energy_keV=3000.0,
        scattering_deg=165.0,
        incidence_deg=0.0,
        detector=Detector(channels=1024, gain_keV_per_channel=3.0, resolution_fwhm_keV=15.0),
        fluence_times_solid_angle_sr=1e11,
        energy_cutoff_keV=50.0,
        physics=PhysicsOptions(screening="andersen", straggling="bohr"),
    )


def time_per_spectrum(sim: RBSSimulator, params: torch.Tensor, repeat: int) -> float:
    sim.simulate(params[: min(len(params), 4)])  # warm up
    best = float("inf")
    for _ in range(repeat):
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sim.simulate(params)
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best / len(params)


def stage_profile(sim: RBSSimulator, params: torch.Tensor) -> str:
    """Share of the wall time spent in each stage (torch profiler, rbs.* labels)."""
    sim.simulate(params)
    with torch.profiler.profile() as prof:
        t0 = time.perf_counter()
        sim.simulate(params)
        total = time.perf_counter() - t0
    stages = {
        e.key[4:]: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key.startswith("rbs.")
    }
    shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in stages.items())
    return f"{total / len(params) * 1e3:.3f} ms/spectrum under the profiler: {shares}"


def speed_probe_us() -> float:
    """Time of one small torch operation (a product of two 1000-element float64 vectors),
    µs: the per-operation cost that dominates batch-1 timings.  On shared virtual machines
    it drifts by up to 2× between runs, so it is printed with every result."""
    a = torch.rand(1000, dtype=torch.float64)
    for _ in range(200):
        a * a
    t0 = time.perf_counter()
    for _ in range(5000):
        a * a
    return (time.perf_counter() - t0) / 5000 * 1e6


def measured_peak_gflops() -> float:
    """Practical float64 peak of this machine: a large matrix product."""
    a = torch.rand(1500, 1500, dtype=torch.float64)
    a @ a
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 1500**3 / (time.perf_counter() - t0) / 1e9


def work_per_spectrum(sim: RBSSimulator, params: torch.Tensor) -> dict[str, float]:
    """Nodes, node-layer crossings and window elements per spectrum (instrumented run)."""
    from specinv.physics.rbs import spectrum

    counts = {"nodes": 0, "window": 0}
    add_local = spectrum._add_local

    def counting(flat, offsets, distance, columns, base):
        # columns: [5, nodes, 2 half-windows]; offsets: [2, half-width]
        counts["nodes"] += columns.shape[1]
        counts["window"] += columns.shape[1] * offsets.numel()
        return add_local(flat, offsets, distance, columns, base)

    spectrum._add_local = counting
    try:
        sim.simulate(params)
    finally:
        spectrum._add_local = add_local
    layers = torch.tensor([r.layer for r in sim.reactions], dtype=torch.float64)
    n = len(params)
    return {
        "active nodes": counts["nodes"] / n,
        "window elements": counts["window"] / n,
        "mean crossings per node": float(layers.mean()) + 1.0,
    }


def arithmetic_floor(sim: RBSSimulator, params: torch.Tensor, peak: float) -> str:
    """Lower bound on the time per spectrum: floating-point operations of the algorithm
    (approximate counts per item) at the machine's practical float64 peak."""
    w = work_per_spectrum(sim, params)
    flops = (
        w["window elements"] * 65  # exp, erfc, ~14 arithmetic
        + w["active nodes"] * (w["mean crossings per node"] * 80 + 150)  # paths, yields
        + sim.setup.detector.channels * 12
    )  # B-spline integration
    return (
        f"{w['active nodes']:.0f} nodes, {w['window elements']:.0f} window elements, "
        f"~{flops / 1e6:.2f} MFLOP/spectrum -> floor {flops / (peak * 1e9) * 1e3:.4f} ms "
        f"at {peak:.0f} GFLOP/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=["float64", "float32"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--single-repeat", type=int, default=50)
    ap.add_argument("--samples", default="A,B,C")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="print the share of each stage and the arithmetic floor",
    )
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default allocator settings (the specinv command and "
        "the workflow's jobs call specinv.memory.keep_freed_memory)",
    )
    args = ap.parse_args()
    kept = False if args.default_malloc else keep_freed_memory()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    gen = torch.Generator().manual_seed(0)
    peak = measured_peak_gflops() if args.profile else 0.0
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, device {args.device}; "
        f"speed probe {speed_probe_us():.2f} us per small op; freed memory kept: {kept}"
    )
    for name in args.samples.split(","):
        sim = RBSSimulator(reference_setup(), SAMPLES[name], device=args.device, dtype=dtype)
        d = sim.n_parameters
        params = 50.0 + 4950.0 * torch.rand(args.batch, d, generator=gen, dtype=torch.float64)
        params = params.to(device=args.device, dtype=sim.dtype)
        batched = time_per_spectrum(sim, params, args.repeat)
        singles = []
        for i in range(args.single_repeat):
            singles.append(time_per_spectrum(sim, params[i : i + 1], 1))
        single = sorted(singles)[len(singles) // 2]
        jabs = JABS_MS[name] / 1e3
        print(
            f"{name}: D={d:2d} reactions={len(sim.reactions):2d} | batch {args.batch}: "
            f"{batched * 1e3:8.4f} ms/spectrum = {1 / batched:9.0f} spectra/s, "
            f"JaBS/ours = {jabs / batched:6.1f} | batch 1 (median): {single * 1e3:7.3f} ms, "
            f"JaBS/ours = {jabs / single:5.2f}"
        )
        if args.profile:
            for label, batch in (("batch", params), ("single", params[:1])):
                print(f"   {label}: " + stage_profile(sim, batch))
            print("   floor: " + arithmetic_floor(sim, params, peak))


if __name__ == "__main__":
    main()
