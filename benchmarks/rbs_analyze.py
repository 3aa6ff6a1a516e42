"""``specinv rbs analyze`` on many synthetic spectra written as files: its wall time, and its
accepted share and median relative errors against the same evaluation done in memory.

    python benchmarks/rbs_analyze.py results/rbs_A_small --spectra 10000 [--refine]

The spectra are drawn from the run's own priors and setup (seeded, Poisson noise), written
as ``specinv rbs simulate`` CSV files, and analysed by the command in a subprocess (the
time a user waits, reading the files included).  The in-memory evaluation feeds the same
counts straight to the run's preprocessing, networks and χ² (the workflow's path); the two
must agree exactly.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def synthetic_spectra(model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(true parameters [n, D], Poisson counts [n, C]) from the run's priors and setup."""
    technique = model.technique
    rng = np.random.default_rng([seed, 0])
    params = technique.sample(rng.random((n, technique.n_uniforms)))
    with torch.no_grad():
        expected = np.concatenate(
            [
                technique.simulate(torch.as_tensor(params[i : i + 2000])).cpu().numpy()
                for i in range(0, n, 2000)
            ]
        )
    counts = technique.add_noise(expected, np.random.default_rng([seed, 1]))
    return params, counts


def write_files(folder: Path, counts: np.ndarray, setup) -> list[Path]:
    det = setup.detector
    channel = np.arange(counts.shape[1])
    energy = det.channel_energy(channel.astype(float))
    paths = []
    for i, c in enumerate(counts):
        path = folder / f"spectrum_{i:05d}.csv"
        table = np.column_stack([channel, energy, c])
        np.savetxt(
            path,
            table,
            delimiter=",",
            header="channel,energy_keV,counts",
            comments="",
            fmt=["%d", "%.6f", "%d"],
        )
        paths.append(path)
    return paths


def in_memory(model, counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The workflow's path on the counts themselves: estimates [n, D] and accepted [n]."""
    from specinv.evaluation.metrics import chi2_threshold
    from specinv.fitting.problem import SpectrumFitProblem
    from specinv.fitting.runner import parameter_bounds
    from specinv.training.runs import predict_spectra

    estimate = predict_spectra(model.run, counts)["mean"].values
    low, high = parameter_bounds(model.technique)
    problem = SpectrumFitProblem(
        model.technique.simulate, counts, model.roi, low, high, dtype=torch.float64
    )
    chi2 = problem.chi2(np.clip(estimate, low, high), np.arange(len(counts)))
    return estimate, chi2 <= chi2_threshold(int(model.roi.sum()), alpha)


def mre(estimate: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.median(np.abs(estimate - true) / np.abs(true), axis=0)


def main() -> int:
    from specinv.techniques.rbs.analyze import load_analysis_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a workflow run's results folder (RBS)")
    parser.add_argument("--spectra", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--refine", action="store_true")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    model = load_analysis_model(args.results, device="cpu")
    true, counts = synthetic_spectra(model, args.spectra, args.seed)
    names = model.run.parameter_names
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "spectra"
        folder.mkdir()
        write_files(folder, counts, model.setup)
        out = Path(tmp) / "analysis"
        command = [
            sys.executable,
            "-m",
            "specinv.cli",
            "rbs",
            "analyze",
            str(args.results),
            str(folder),
            "-o",
            str(out),
            "--figures",
            "0",
        ]
        if args.refine:
            command.append("--refine")
        t0 = time.perf_counter()
        r = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        table = pd.read_csv(out / "analysis.csv")
    print(r.stdout.strip().splitlines()[-2])
    done = table[table.status == "analysed"]
    index = done.file.str.extract(r"spectrum_(\d+)\.csv")[0].astype(int).values
    estimate = done[[f"estimate:{n}" for n in names]].values
    memory_estimate, memory_accepted = in_memory(model, counts, args.alpha)
    print(
        f"{len(done)} of {args.spectra} spectra analysed in {wall:.1f} s (wall, "
        f"{'with' if args.refine else 'without'} refinement)"
    )
    print("| evaluation | accepted | " + " | ".join(f"MRE {n}" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    rows = {
        "specinv rbs analyze (files)": (estimate, done["accepted"].values),
        "in memory (workflow path)": (memory_estimate[index], memory_accepted[index]),
    }
    if args.refine:
        rows["analyze, refined"] = (
            done[[f"refined:{n}" for n in names]].values,
            done["refined_accepted"].values,
        )
    for label, (est, accepted) in rows.items():
        errors = mre(est, true[index])
        print(
            f"| {label} | {100 * np.mean(accepted):.1f} % | "
            + " | ".join(f"{e:.4f}" for e in errors)
            + " |"
        )
    same = np.allclose(estimate, memory_estimate[index], rtol=1e-9, atol=0)
    print(f"estimates identical to the in-memory path: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
