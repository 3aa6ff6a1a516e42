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
from typing import Any

import numpy as np
import torch

from ...cli import seed_argument
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
    sim = subparsers.add_parser(
        "simulate",
        help="simulate the diffraction curve of an experiment file",
        description="Simulate the expected XRD curve of the crystal, setup and sample in "
        "EXPERIMENT (YAML or JSON; see specinv.techniques.xrd.cli) and write a CSV with "
        "columns <axis coordinate>, counts.",
    )
    sim.add_argument("experiment", type=Path, help="experiment file (.yaml, .yml or .json)")
    sim.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write")
    sim.add_argument("--plot", type=Path, help="also write a figure (PNG/PDF/SVG, log scale)")
    sim.add_argument(
        "--noise",
        action="store_true",
        help="counts column with Poisson noise (expected_counts column added)",
    )
    sim.add_argument(
        "--seed", type=seed_argument, default=0, help="seed of the Poisson noise (0 … 2**63-1)"
    )
    sim.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    sim.set_defaults(func=simulate_command)


def simulate_command(args: argparse.Namespace) -> int:
    """``specinv xrd simulate``: one experiment file -> CSV (and a figure); every option is
    checked before the simulation starts."""
    from ...devices import check_device
    from ...fileio import atomic_path, check_output_path
    from ...plotting import check_figure_path, plot_spectrum

    check_output_path(args.output, "-o/--output")
    if args.plot:
        check_figure_path(args.plot, "--plot")
    device = check_device(args.device, "--device")
    technique, params = load_xrd_experiment(args.experiment, device=device)
    t0 = time.perf_counter()
    expected = technique.simulate(torch.as_tensor(params)).detach().cpu().numpy()
    elapsed = time.perf_counter() - t0
    axis = technique.axis()
    columns: dict[str, Any] = {axis.coordinate: axis.values}
    if args.noise:
        columns["counts"] = technique.add_noise(expected, np.random.default_rng(args.seed))
        columns["expected_counts"] = expected
    else:
        columns["counts"] = expected
    with atomic_path(args.output) as tmp:
        np.savetxt(
            tmp,
            np.column_stack(list(columns.values())),
            delimiter=",",
            header=",".join(columns),
            comments="",
            fmt=["%.8g"] + ["%.10g"] * (len(columns) - 1),
        )
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
