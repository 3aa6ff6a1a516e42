"""Why specinv's fit of JaBS's example differs from JaBS's in the fluence, the Au thickness
and its roughness: the same fit with JaBS's discretisation of the Gamma thickness
distribution in place of specinv's Gauss quadrature.

    python benchmarks/rbs_jabs_roughness.py [--example ../shared/real/jabs_example]

JaBS (roughness.c, thickness_probability_table_gamma) averages n = 20 spectra at the
midpoints of equal cells over [T − 4σ, T + 4σ] (cut at 0), each weighted with the Gamma
probability of its cell, and then multiplies every weight by T / Σ p x so that the mean
thickness is T; the weights then no longer sum to 1.  This script re-implements that rule
(from its description, for this comparison only) and fits with it: if it moves specinv's
values onto JaBS's, the discretisation is the difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from specinv.physics.rbs import load_experiment
from specinv.techniques.rbs import fitmodel
from specinv.techniques.rbs.fit import fit_spectrum
from specinv.techniques.rbs.fitmodel import RBSFitModel

REPO = Path(__file__).resolve().parents[1]
FREE = [
    "fluence",
    "layer1.thickness",
    "layer1.roughness",
    "layer2.thickness",
    "layer2.O",
    "resolution",
    "offset",
    "gain",
]
JABS = {  # jabs_fit/fit_log.txt
    "fluence": 2.06834e13,
    "layer1.thickness": 32.5883,
    "layer1.roughness": 26.1085,
    "layer2.thickness": 6864.34,
    "layer2.O": 0.666615,
    "resolution": 13.6085,
    "offset": 19.4835,
    "gain": 1.71396,
}


def jabs_cells(thickness: float, sigma: float, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """JaBS's thicknesses (relative to T) and weights of a Gamma-rough layer."""
    shape, scale = (thickness / sigma) ** 2, sigma**2 / thickness
    low, high = max(thickness - 4.0 * sigma, 0.0), thickness + 4.0 * sigma
    edges = low + (high - low) * np.arange(n + 1) / n
    p = np.diff(stats.gamma.cdf(edges, shape, scale=scale))
    mid = 0.5 * (edges[1:] + edges[:-1])
    p = p * thickness / (p * mid).sum()
    return mid / thickness, p


def jabs_rough_samples(areal_densities, layer_columns, sigma_tfu, n):
    """:func:`specinv.physics.rbs.roughness.rough_samples` with JaBS's cells (one rough
    layer; no derivatives: the fit takes finite differences)."""
    (columns,) = layer_columns
    rows, weights = [], []
    for b in range(areal_densities.shape[0]):
        amounts = areal_densities[b].detach().cpu().numpy()
        thickness = float(amounts[columns].sum())
        nodes, w = jabs_cells(thickness, float(sigma_tfu[b, 0]))
        block = np.repeat(amounts[None], len(nodes), axis=0)
        block[:, columns] *= nodes[:, None]
        rows.append(block)
        weights.append(w)
    dtype, device = areal_densities.dtype, areal_densities.device
    return (
        torch.as_tensor(np.concatenate(rows), dtype=dtype, device=device),
        torch.as_tensor(np.array(weights), dtype=dtype, device=device),
    )


def fit(example: Path):
    experiment = load_experiment(REPO / "examples" / "rbs_jabs_example.yaml")
    data = np.loadtxt(example / "experimental.dat")
    channels = 1111
    setup = experiment.setup
    from dataclasses import replace

    setup = replace(setup, detector=replace(setup.detector, channels=channels))
    model = RBSFitModel.from_experiment(
        replace(experiment, setup=setup), FREE, solid_angle_sr=5e-3, roughness_points=20
    )
    roi = np.zeros(channels, dtype=bool)
    roi[200:450] = roi[450:701] = roi[1050:1111] = True
    return fit_spectrum(model, data[:channels, 1], roi)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--example", type=Path, default=REPO.parent / "shared" / "real" / "jabs_example"
    )
    args = parser.parse_args()
    exact = fit(args.example)
    original = fitmodel.rough_samples
    fitmodel.rough_samples = jabs_rough_samples
    try:
        cells = fit(args.example)
    finally:
        fitmodel.rough_samples = original
    nodes, weights = jabs_cells(JABS["layer1.thickness"], JABS["layer1.roughness"])
    print(f"JaBS's cells at its fitted Au: total weight {weights.sum():.4f}")
    print("| parameter | JaBS 0.7.6 | specinv (Gauss quadrature) | specinv with JaBS's cells |")
    print("|---|---|---|---|")
    for i, name in enumerate(FREE):
        print(
            f"| {name} | {JABS[name]:.6g} | {exact.values[i]:.6g} ± {exact.std[i]:.2g} | "
            f"{cells.values[i]:.6g} ± {cells.std[i]:.2g} |"
        )
    print(f"| reduced chi2 | 1.3388 | {exact.reduced_chi2:.4f} | {cells.reduced_chi2:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
