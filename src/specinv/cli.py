"""The ``specinv`` command line.

    specinv rbs simulate EXPERIMENT.yaml -o spectrum.csv [--plot spectrum.png]
                         [--noise --seed N] [--device cpu|cuda] [--log]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def _rbs_simulate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .fileio import atomic_path
    from .physics.rbs import RBSSimulator, load_experiment, poisson_noise

    exp = load_experiment(args.experiment)
    t0 = time.perf_counter()
    sim = RBSSimulator.from_experiment(exp, device=args.device)
    expected = sim.simulate(exp.areal_densities)
    elapsed = time.perf_counter() - t0
    det = exp.setup.detector
    channels = np.arange(det.channels)
    energy = det.channel_energy(channels.astype(float))
    columns = {"channel": channels, "energy_keV": energy}
    if args.noise:
        columns["counts"] = poisson_noise(expected, seed=args.seed).cpu().numpy()
        columns["expected_counts"] = expected.cpu().numpy()
    else:
        columns["counts"] = expected.cpu().numpy()
    with atomic_path(args.output) as tmp:
        np.savetxt(tmp, np.column_stack(list(columns.values())), delimiter=",",
                   header=",".join(columns), comments="",
                   fmt=["%d", "%.6f"] + ["%.10g"] * (len(columns) - 2))
    print(f"{args.output}: {det.channels} channels, {float(expected.sum()):.6g} counts "
          f"(simulated in {elapsed:.2f} s on {sim.device})")
    if args.plot:
        from .plotting import plot_spectrum

        layers = " / ".join(" ".join(f"{n} {v:g}" for n, v in layer.areal_densities.items())
                            for layer in exp.layers)
        s = exp.setup
        title = (f"{s.ion} {s.beam_energy_keV:g} keV, θ = {s.scattering_deg:g}°: {layers} "
                 "(1e15 at/cm²)")
        curves = {"expected counts": expected.detach().cpu().numpy()}
        channel_axis = None if det.quadratic_keV_per_channel2 else (det.offset_keV,
                                                                    det.gain_keV_per_channel)
        plot_spectrum(energy, curves, args.plot, title=title, log=args.log,
                      channel_axis=channel_axis,
                      measured=columns["counts"] if args.noise else None)
        print(f"{args.plot}: figure written")
    del torch
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specinv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"specinv {__version__}")
    techniques = parser.add_subparsers(dest="technique", required=True)
    rbs = techniques.add_parser("rbs", help="Rutherford backscattering spectrometry")
    rbs_cmd = rbs.add_subparsers(dest="command", required=True)
    sim = rbs_cmd.add_parser("simulate", help="simulate the spectrum of an experiment file",
                             description="Simulate the expected RBS spectrum of the sample and "
                             "setup in EXPERIMENT (YAML or JSON, see README) and write a CSV "
                             "with columns channel, energy_keV (lower channel edge), counts.")
    sim.add_argument("experiment", type=Path, help="experiment file (.yaml, .yml or .json)")
    sim.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    sim.add_argument("--plot", type=Path, help="also write a figure (PNG/PDF/SVG)")
    sim.add_argument("--log", action="store_true", help="logarithmic counts axis in the plot")
    sim.add_argument("--noise", action="store_true",
                     help="counts column with Poisson noise (expected_counts column added)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise")
    sim.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    sim.set_defaults(func=_rbs_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .memory import keep_freed_memory
    from .physics.rbs.experiment import ExperimentError

    keep_freed_memory()

    try:
        return args.func(args)
    except ExperimentError as exc:
        print(f"specinv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
