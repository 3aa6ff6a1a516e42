"""``specinv xrd`` verbs: ``simulate`` an experiment file (the ``xrd`` section's keys and a
``sample``) into a two-column curve.

An XRD experiment file (YAML or JSON)::

    crystal: YSZ                 # bundled (YSZ, ZrO2, Si) or a crystal file
    reflection: [4, 0, 0]
    wavelength_A: 1.5406
    axis: {coordinate: two_theta_deg, start: 72.8, stop: 73.8, points: 501}
    slices: 60
    strain_weights: 6
    sample:
      strain_percent: [0.0, 0.3, 0.6, 0.7, 0.5, 0.3]   # interface first
      thickness_nm: 200
      dw_min: 0.7
      fwhm_deg: 0.01
      dynamic_range: 5
      log10_peak: 4
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from ...cli import add_simulate_parser, check_output_arguments, write_simulated_csv
from ...config.errors import ConfigError
from ...config.files import load_mapping_file
from ...config.schema import validate
from .technique import SCALARS, XRDTechnique


def load_xrd_experiment(path: str | Path, device=None) -> tuple[XRDTechnique, np.ndarray]:
    """The technique and the parameter vector [D] of an XRD experiment file.

    Raises:
        ConfigError: naming the file and the key.
    """
    data = dict(load_mapping_file(path, "XRD experiment file (YAML or JSON)"))
    try:
        if "sample" not in data:
            raise ConfigError("sample: is required but missing")
        sample = data.pop("sample")
        schema = XRDTechnique.config_schema
        validate(data, schema)
        sample_schema = {"$defs": schema["$defs"], **copy.deepcopy(schema["$defs"]["sample"])}
        validate(sample, sample_schema, where="sample")
        technique = XRDTechnique(data, device=device)
        weights = sample["strain_percent"]
        if len(weights) != technique.n_weights:
            raise ConfigError(
                f"sample.strain_percent: expected {technique.n_weights} weights "
                f"(strain_weights), got {len(weights)}"
            )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    params = np.array([*weights, *(sample[name] for name, _ in SCALARS)], dtype=np.float64)
    return technique, params


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    _add_simulate(subparsers)
    _add_fit(subparsers)


def _add_fit(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit",
        help="fit a measured curve (Levenberg-Marquardt in log intensity)",
        description="Fit the strain and damage profile of a measured two-column curve "
        "(angle in degrees, intensity) by Levenberg-Marquardt in log intensity, starting "
        "from the `sample` of EXPERIMENT (an XRD experiment file: crystal, reflection, "
        "wavelength, slices, strain_weights, prior; its axis is taken from the curve), or "
        "with --network from a trained network's estimate of the curve. "
        "Writes a CSV (angle, measured, fitted) and prints the fitted parameters.",
    )
    fit.add_argument("curve", type=Path, help="measured curve: angle (deg), intensity")
    fit.add_argument("experiment", type=Path, help="XRD experiment file (the start)")
    fit.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    fit.add_argument("--plot", type=Path, help="also write a figure (curves and profiles)")
    fit.add_argument(
        "--axis",
        choices=["two_theta_deg", "theta_deg"],
        default="two_theta_deg",
        help="what the curve's first column is (default 2θ)",
    )
    fit.add_argument("--iterations", type=int, default=100, help="Levenberg-Marquardt steps")
    fit.add_argument(
        "--network",
        type=Path,
        help="start from the estimate of the network of this workflow run (its results "
        "folder, results/<name>; same crystal, reflection and strain_weights) instead of "
        "the experiment file's sample",
    )
    fit.add_argument(
        "--size", type=int, help="with --network: the training-set size (default: largest)"
    )
    fit.set_defaults(func=fit_command)


def _add_simulate(subparsers: argparse._SubParsersAction) -> None:
    add_simulate_parser(
        subparsers,
        "the diffraction curve",
        "Simulate the expected XRD curve of the crystal, setup and sample in EXPERIMENT (YAML "
        "or JSON; see specinv.techniques.xrd.cli) and write a CSV with columns <axis "
        "coordinate>, counts.",
        "also write a figure (PNG/PDF/SVG, log scale)",
        simulate_command,
    )


def simulate_command(args: argparse.Namespace) -> int:
    """``specinv xrd simulate``: one experiment file -> CSV (and a figure); every option is
    checked before the simulation starts."""
    from ...plotting import plot_spectrum

    device = check_output_arguments(args)
    technique, params = load_xrd_experiment(args.experiment, device=device)
    t0 = time.perf_counter()
    expected = technique.simulate(torch.as_tensor(params)).detach().cpu().numpy()
    elapsed = time.perf_counter() - t0
    columns = write_simulated_csv(args, technique, expected, "%.8g")
    print(
        f"{args.output}: {len(expected)} points, peak {expected.max():.6g} counts "
        f"(simulated in {elapsed:.2f} s on {device})"
    )
    if args.plot:
        s = technique.setup
        title = (
            f"{technique.crystal.name} {''.join(map(str, s.hkl))}, λ = {s.wavelength_A:g} Å: "
            f"t = {params[technique.n_weights]:g} nm, e_max ≈ "
            f"{technique.strain_profiles(params).max():.2g} %"
        )
        axis = technique.axis()
        plot_spectrum(
            axis.values,
            {"expected counts": expected},
            args.plot,
            title=title,
            log=True,
            measured=columns["counts"] if args.noise else None,
            xlabel=axis.label,
            ylabel="counts",
        )
        print(f"{args.plot}: figure written")
    return 0


def fit_command(args: argparse.Namespace) -> int:
    """``specinv xrd fit``: a measured curve -> fitted parameters, CSV (and a figure)."""
    from ...fileio import write_csv_columns
    from .curves import read_curve
    from .fit import fit_curve, technique_for_curve

    check_output_arguments(args)
    if args.iterations < 1:
        raise ConfigError(f"--iterations: expected >= 1, got {args.iterations}")
    if args.size is not None and args.network is None:
        raise ConfigError("--size: expected together with --network")
    run = None
    if args.network is not None:
        from .network import load_network_run

        run = load_network_run(args.network, args.size)
    curve = read_curve(args.curve)
    start_technique, start = load_xrd_experiment(args.experiment)
    technique = technique_for_curve(start_technique.section, curve, args.axis)
    t0 = time.perf_counter()
    if run is not None:
        from .network import network_estimate

        start = network_estimate(run, curve, args.axis, technique)
        print(
            f"network {run.checkpoints[0].parent.parent.name} of {args.network}: e_max "
            f"{technique.strain_profiles(start).max():.3g} %, t {start[technique.n_weights]:.4g}"
            f" nm ({time.perf_counter() - t0:.1f} s)"
        )
    result = fit_curve(technique, curve.intensity, start, max_iterations=args.iterations)
    elapsed = time.perf_counter() - t0
    write_csv_columns(
        args.output,
        {args.axis: curve.angle_deg, "measured": curve.intensity, "fitted": result.fitted},
    )
    print(
        f"{args.output}: rms Δlog10 I {result.rms_log10:.4f} (start {result.rms_log10_start:.4f}) "
        f"after {result.iterations} steps, {result.simulations:.0f} simulated curves, "
        f"{elapsed:.1f} s"
    )
    for name, unit, value in zip(
        technique.parameter_names, technique.parameter_units, result.params, strict=True
    ):
        print(f"  {name:16s} {value:12.6g}  {unit}")
    if args.plot:
        _plot_fit(technique, curve, result, args.plot, args.axis)
        print(f"{args.plot}: figure written")
    return 0


def _plot_fit(technique, curve, result, path: Path, axis: str) -> None:
    """Measured and fitted curves (log scale) beside the fitted strain and DW profiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_path

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    left.semilogy(curve.angle_deg, curve.intensity, ".", ms=2.5, color="0.45", label="measured")
    left.semilogy(curve.angle_deg, result.fitted, lw=1.2, label="fit")
    left.set_xlabel({"two_theta_deg": "2θ (deg)", "theta_deg": "θ (deg)"}[axis])
    left.set_ylabel("intensity")
    left.set_title(f"{Path(curve.source).name}: rms Δlog10 I = {result.rms_log10:.3f}")
    left.legend()
    n = technique.n_weights
    thickness_nm = result.params[n]
    depth = (np.arange(200) + 0.5) / 200
    strain = technique.strain_profiles(result.params, n_depths=200)[0]
    right.plot(depth * thickness_nm, strain, label="strain (%)")
    right.set_xlabel("depth below the surface (nm)")
    right.set_ylabel("strain (%)")
    shape = strain / strain.max() if strain.max() > 0 else strain
    dw_min = result.params[n + 1]
    twin = right.twinx()
    twin.plot(depth * thickness_nm, np.exp(np.log(dw_min) * shape**2), "--", color="C1")
    twin.set_ylabel("Debye–Waller factor (dashed)")
    twin.set_ylim(0, 1.05)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
