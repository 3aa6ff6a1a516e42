"""The measured YSZ 400 curve of RaDMaX's example, fitted with ``specinv xrd fit``'s model,
beside RaDMaX's own fit (issue 16): rms of Δlog10 I of both, and the strain profiles.

Reads the team's shared folder (``$SPECINV_SHARED`` or ``shared/`` beside the checkout):
``real/xrd_radmax_ysz/`` (the curve, RaDMaX's 6 strain and 6 DW B-spline weights, damaged
depth 199.8 nm in 60 slices, Gaussian instrument 0.013°, background 1e-5 of the peak).
Writes ``results/validation/xrd_ysz.png``.

Usage::

    python benchmarks/xrd_ysz_validation.py [--shared PATH] [--out FIGURE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from specinv.config.schema import validate
from specinv.physics.xrd import XRDSetup, XRDSimulator, bspline_design_matrix, load_crystal
from specinv.techniques.xrd import XRDTechnique
from specinv.techniques.xrd.curves import read_curve
from specinv.techniques.xrd.fit import fit_curve, technique_for_curve

REPO = Path(__file__).resolve().parents[1]
RADMAX_DEPTH_NM = 199.8


def shared_folder(given: Path | None) -> Path:
    if given:
        return given
    if os.environ.get("SPECINV_SHARED"):
        return Path(os.environ["SPECINV_SHARED"])
    for parent in REPO.parents:
        if (parent / "shared" / "real").is_dir():
            return parent / "shared"
    raise SystemExit("shared folder not found: give --shared or set SPECINV_SHARED")


def radmax_curve(folder: Path, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RaDMaX's fitted curve on ``angles`` (2θ) and its strain (%) at 200 depths."""
    strain = np.loadtxt(folder / "input_strain_coeff.txt")
    dw = np.loadtxt(folder / "input_DW_coeff.txt")
    setup = XRDSetup(
        crystal=load_crystal("YSZ"),
        hkl=(4, 0, 0),
        wavelength_A=1.5406,
        angles=angles,
        axis="two_theta_deg",
        n_slices=60,
        n_strain_weights=len(strain),
        dw_model="spline",
        n_dw_weights=len(dw),
        sampling="surface_edge",
    )
    sim = XRDSimulator(setup)
    params = [*strain, 0.01, RADMAX_DEPTH_NM * 10, *dw, 0.013, 1e-5, 1.0]
    curve = sim.simulate(torch.tensor([params], dtype=torch.float64))[0].numpy()
    depth = (np.arange(200) + 0.5) / 200
    profile = bspline_design_matrix(len(strain), 1 - depth)[:, 3:] @ strain
    return curve, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "results/validation/xrd_ysz.png")
    args = parser.parse_args()
    folder = shared_folder(args.shared) / "real" / "xrd_radmax_ysz"
    curve = read_curve(folder / "YSZ-XRD.txt")
    data = yaml.safe_load((REPO / "examples" / "xrd_YSZ_400.yaml").read_text())
    sample = data.pop("sample")
    validate(data, XRDTechnique.config_schema)
    technique = technique_for_curve(data, curve)
    start = np.array(
        [
            *sample["strain_percent"],
            *(
                sample[k]
                for k in ("thickness_nm", "dw_min", "fwhm_deg", "dynamic_range", "log10_peak")
            ),
        ]
    )
    t0 = time.perf_counter()
    fit = fit_curve(technique, curve.intensity, start)
    seconds = time.perf_counter() - t0
    measured = curve.intensity / curve.intensity.max()
    radmax, radmax_profile = radmax_curve(folder, curve.angle_deg)
    floor = 0.5 * measured[measured > 0].min()
    rms_radmax = np.sqrt(np.mean((np.log10(radmax + floor) - np.log10(measured + floor)) ** 2))
    ours = technique.strain_profiles(fit.params, n_depths=200)[0]
    thickness = fit.params[technique.n_weights]
    # both profiles on a common depth grid (nm), zero below each layer
    depth = np.linspace(0, max(thickness, RADMAX_DEPTH_NM), 400)
    grid = (np.arange(200) + 0.5) / 200
    a = np.interp(depth, grid * thickness, ours, right=0.0)
    b = np.interp(depth, grid * RADMAX_DEPTH_NM, radmax_profile, right=0.0)
    print(
        f"specinv fit: rms Δlog10 I = {fit.rms_log10:.4f} ({fit.iterations} LM steps, "
        f"{fit.simulations:.0f} curves, {seconds:.1f} s); RaDMaX's weights: {rms_radmax:.4f}"
    )
    print(
        f"thickness {thickness:.1f} nm (RaDMaX {RADMAX_DEPTH_NM}); max strain "
        f"{ours.max():.3f} % (RaDMaX {radmax_profile.max():.3f} %); profiles differ by "
        f"{np.sqrt(np.mean((a - b) ** 2)):.3f} % rms over depth"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    left.semilogy(curve.angle_deg, measured, ".", ms=2.5, color="0.45", label="measured")
    left.semilogy(
        curve.angle_deg,
        fit.fitted / curve.intensity.max(),
        label=(f"specinv fit (rms Δlog10 I {fit.rms_log10:.3f})"),
    )
    left.semilogy(curve.angle_deg, radmax, "--", label=f"RaDMaX's fit ({rms_radmax:.3f})")
    left.set_xlabel("2θ (deg)")
    left.set_ylabel("intensity / max")
    left.set_title("YSZ 400, Cu Kα1 (RaDMaX example)")
    left.legend(fontsize=8)
    right.plot(depth, a, label="specinv fit (DW coupled to strain)")
    right.plot(depth, b, "--", label="RaDMaX (independent DW spline)")
    right.set_xlabel("depth below the surface (nm)")
    right.set_ylabel("strain (%)")
    right.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=150)
    print(f"{args.out}: figure written")


if __name__ == "__main__":
    main()
