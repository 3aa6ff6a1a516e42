"""``specinv rbs fit`` (a least-squares fit of one measured spectrum), ``specinv rbs
analyze`` (many spectra with a trained network) and ``specinv rbs design`` (how well
candidate setups determine a sample's parameters).

    specinv rbs fit SPECTRUM [--experiment EXP.yaml] [--fit NAME,...] [--roi LOW:HIGH ...]
                    [--tilt towards|away] [--relative] [-o OUTDIR]

The experiment (setup and starting sample) comes from the spectrum's file (IDF / SIMNRA
xnra) and from ``--experiment`` (an experiment YAML of the same shape as ``specinv rbs
simulate``'s; its values override the file's).  The fit writes into OUTDIR: the fitted
experiment (``experiment.yaml``, which ``specinv rbs simulate`` turns back into the fitted
spectrum), the values with uncertainties and correlations (``result.json``), the measured
and fitted spectra (``spectrum.csv``) and a figure with residuals (``fit.png``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...config.errors import ConfigError

#: free parameters when --fit is not given: the fluence and every layer but the substrate
DEFAULT_FREE = "fluence and the thickness of every layer above the last"


def add_fit_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit one measured spectrum (Levenberg–Marquardt, uncertainties, residual plot)",
        description=(
            "Fit the sample and experiment parameters of one measured RBS spectrum. The "
            "setup and the starting sample come from the file (IDF, SIMNRA .xnra) and from "
            "--experiment; free parameters: fluence, offset, gain, resolution, "
            "layerN.thickness, layerN.roughness, layerN.<element> (atomic fraction; the "
            "layer's other elements keep their ratios), layers counted from 1 at the surface."
        ),
    )
    parser.add_argument("spectrum", type=Path, help="measured spectrum (IDF/xnra XML, text, CSV)")
    parser.add_argument(
        "--experiment",
        type=Path,
        help="experiment YAML/JSON: setup and sample (surface first) overriding the file's",
    )
    parser.add_argument(
        "--fit",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help=f"free parameters (repeatable; default: {DEFAULT_FREE})",
    )
    parser.add_argument(
        "--roi",
        action="append",
        default=[],
        metavar="LOW:HIGH",
        help="channels fitted, both ends included (repeatable; default: from two resolution "
        "widths above the energy cut-off to the last channel with counts)",
    )
    parser.add_argument(
        "--tilt",
        choices=("towards", "away"),
        default="towards",
        help="IBM geometry without a stated exit angle: sample tilted towards the detector "
        "(beta = 180 - theta - alpha, the default) or away from it (180 - theta + alpha)",
    )
    parser.add_argument(
        "--exit-deg",
        type=float,
        help="exit angle beta (degrees from the surface normal), overriding the file's and --tilt",
    )
    parser.add_argument(
        "--relative",
        action="store_true",
        help="treat the counts as relative (equal weights, uncertainties from the residual "
        "variance); automatic for files whose counts are not whole numbers",
    )
    parser.add_argument(
        "--roughness-points",
        type=int,
        default=None,
        help="quadrature points of each rough layer's thickness distribution (default 10)",
    )
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: SPECTRUM_fit)")
    parser.add_argument("--log", action="store_true", help="logarithmic counts axis in the figure")
    parser.set_defaults(func=fit_command)


def parse_roi(texts: list[str], n_channels: int) -> np.ndarray | None:
    """Channel mask [n_channels] of ``LOW:HIGH`` ranges (both ends included); None if none.

    Raises:
        ConfigError: naming the range and what was expected.
    """
    if not texts:
        return None
    mask = np.zeros(n_channels, dtype=bool)
    for text in texts:
        for part in text.split(","):
            low, sep, high = part.partition(":")
            try:
                lo, hi = int(low), int(high)
            except ValueError:
                lo = hi = -1
            if not sep or not 0 <= lo <= hi < n_channels:
                raise ConfigError(
                    f"--roi {part!r}: expected LOW:HIGH, whole channel numbers with "
                    f"0 <= LOW <= HIGH <= {n_channels - 1}"
                )
            mask[lo : hi + 1] = True
    return mask


def default_free(n_layers: int) -> list[str]:
    return ["fluence"] + [f"layer{i}.thickness" for i in range(1, max(n_layers, 2))]


def default_roi(
    counts: np.ndarray, energy_keV: np.ndarray, cutoff_keV: float, resolution_fwhm_keV: float
) -> np.ndarray:
    """Every channel from two resolution widths above the energy cut-off (where the
    simulated spectrum no longer feels the cut-off) up to the last channel with counts."""
    mask = energy_keV > cutoff_keV + 2.0 * resolution_fwhm_keV
    counted = np.nonzero(counts > 0)[0]
    if counted.size:
        mask[counted[-1] + 1 :] = False
    return mask


def fit_command(args: argparse.Namespace) -> int:
    """``specinv rbs fit``: every input is read and checked before the fit starts."""
    from ...config.files import load_mapping_file
    from ...fileio import atomic_path, write_csv_columns
    from ...physics.rbs import ExperimentError, experiment_from_dict, experiment_to_dict
    from .fit import fit_spectrum
    from .fitmodel import FitModelError, RBSFitModel
    from .measured import MeasuredFileError, experiment_mapping, read_spectrum

    try:
        measured = read_spectrum(args.spectrum)
        overrides = (
            load_mapping_file(args.experiment, "experiment file (YAML or JSON)")
            if args.experiment
            else None
        )
        if args.exit_deg is not None:
            overrides = {**(overrides or {})}
            overrides["geometry"] = {**overrides.get("geometry", {}), "exit_deg": args.exit_deg}
        mapping = experiment_mapping(measured, overrides=overrides, tilt=args.tilt)
        experiment = experiment_from_dict(mapping)
    except (MeasuredFileError, ExperimentError) as exc:
        raise ConfigError(str(exc)) from None
    n_file = measured.first_channel + measured.n_channels
    counts = np.zeros(n_file)
    counts[measured.first_channel :] = measured.counts
    det = experiment.setup.detector
    energy = det.channel_energy(np.arange(n_file, dtype=float))
    roi = parse_roi(args.roi, n_file)
    if roi is None:
        roi = default_roi(
            counts, energy, experiment.setup.energy_cutoff_keV, det.resolution_fwhm_keV
        )
    if not roi.any():
        raise ConfigError(
            f"{args.spectrum}: no channel with counts lies two resolution widths above the "
            f"energy cut-off ({experiment.setup.energy_cutoff_keV:g} keV); give --roi"
        )
    # the spectrum is simulated up to the last channel fitted
    n_model = int(np.nonzero(roi)[0][-1]) + 1
    setup = replace(experiment.setup, detector=replace(det, channels=n_model))
    free = [name for text in args.fit for name in text.split(",") if name] or default_free(
        len(experiment.layers)
    )
    solid_angle_msr = mapping.get("detector", {}).get("solid_angle_msr")
    options = {} if args.roughness_points is None else {"roughness_points": args.roughness_points}
    relative = args.relative or measured.relative
    try:
        if "fluence" in free:
            setup = _fluence_scaled_to(counts[:n_model], roi[:n_model], experiment, setup)
        model = RBSFitModel.from_experiment(
            replace(experiment, setup=setup),
            free,
            solid_angle_sr=solid_angle_msr * 1e-3 if "fluence" in mapping else None,
            **options,
        )
    except (FitModelError, ExperimentError) as exc:
        raise ConfigError(str(exc)) from None
    out = args.output or args.spectrum.with_name(args.spectrum.name.replace(".", "_") + "_fit")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o/--output: {str(out)!r} is a file; expected a folder")
    for note in measured.notes:
        print(f"note: {note}")
    print(
        f"{args.spectrum}: fitting {', '.join(model.names)} on {int(roi.sum())} channels"
        + (" (relative counts: equal weights)" if relative else "")
    )
    fit = fit_spectrum(model, counts[:n_model], roi[:n_model], relative=relative)
    print(fit.table())

    fitted = model.experiment(fit.values, channels=n_file)
    out.mkdir(parents=True, exist_ok=True)
    document = experiment_to_dict(fitted, solid_angle_msr if "fluence" in mapping else None)
    import yaml

    with atomic_path(out / "experiment.yaml") as tmp:
        tmp.write_text(
            f"# fitted by specinv rbs fit from {args.spectrum.name}\n"
            + yaml.safe_dump(document, sort_keys=False)
        )
    with atomic_path(out / "result.json") as tmp:
        tmp.write_text(json.dumps(_result_document(args, fit, measured), indent=2) + "\n")
    expected = np.zeros(n_file)
    expected[:n_model] = fit.expected
    fitted_energy = fitted.setup.detector.channel_energy(np.arange(n_file, dtype=float))
    write_csv_columns(
        out / "spectrum.csv",
        {
            "channel": np.arange(n_file),
            "energy_keV": fitted_energy,
            "counts": counts,
            "fitted": expected,
            "in_roi": np.pad(roi[:n_model], (0, n_file - n_model)).astype(int),
        },
        ["%d", "%.6f", "%.10g", "%.10g", "%d"],
    )
    _plot_fit(out / "fit.png", fitted_energy[:n_model], counts[:n_model], fit, args)
    print(f"{out}: experiment.yaml, result.json, spectrum.csv, fit.png written")
    return 0


def _fluence_scaled_to(counts, roi, experiment, setup):
    """``setup`` with its fluence scaled so that the start's spectrum has the size of the
    measured one on the region of interest (least squares of one factor): a start for the
    fluence whatever the file states (relative counts, a charge without a fluence)."""
    from .fitmodel import RBSFitModel

    start = replace(experiment, setup=setup)
    spectrum = RBSFitModel.from_experiment(start, []).simulate(np.zeros((1, 0)))[0].numpy()
    s, x = spectrum[roi], counts[roi]
    scale = float(x @ s) / float(s @ s) if float(s @ s) > 0 else 0.0
    if not np.isfinite(scale) or scale <= 0:
        return setup
    return replace(setup, fluence_times_solid_angle_sr=setup.fluence_times_solid_angle_sr * scale)


def _result_document(args, fit, measured) -> dict:
    def number(x):
        return float(x) if np.isfinite(x) else None

    return {
        "spectrum": str(args.spectrum),
        "parameters": {
            name: {
                "value": float(v),
                "std": number(s),
                "std_scaled": number(s * np.sqrt(max(fit.reduced_chi2, 1.0))),
                "unit": unit,
                "start": float(s0),
            }
            for name, v, s, unit, s0 in zip(
                fit.names, fit.values, fit.std, fit.units, fit.start, strict=True
            )
        },
        "correlation": [[number(c) for c in row] for row in fit.correlation],
        "chi2": fit.chi2,
        "dof": fit.dof,
        "reduced_chi2": fit.reduced_chi2,
        "roi_channels": int(fit.roi.sum()),
        "relative_counts": fit.relative,
        "converged": fit.converged,
        "iterations": fit.iterations,
        "simulated_spectra": fit.simulations,
        "seconds": fit.seconds,
        "notes": list(measured.notes),
        "uncertainties": (
            "std: from the Fisher information at the fitted spectrum (residual variance "
            "for relative counts); std_scaled: times sqrt(reduced chi2) where it exceeds 1"
        ),
    }


def _plot_fit(path: Path, energy: np.ndarray, counts: np.ndarray, fit, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...fileio import atomic_path

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, height_ratios=[3, 1], constrained_layout=True
    )
    top.plot(energy, counts, ".", ms=2.5, color="0.45", label="measured")
    top.plot(energy, fit.expected, lw=1.2, color="C3", label="fit")
    shade = np.where(fit.roi, 1.0, np.nan)
    top.fill_between(
        energy,
        0,
        np.nanmax(counts) * 1.05 * shade,
        color="C0",
        alpha=0.07,
        lw=0,
        label="fitted channels",
    )
    if args.log:
        top.set_yscale("log")
        top.set_ylim(bottom=0.5)
    else:
        top.set_ylim(bottom=0)
    top.set_ylabel("counts per channel")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(
        f"{args.spectrum.name}: reduced χ² {fit.reduced_chi2:.3f} over {int(fit.roi.sum())} "
        f"channels ({len(fit.names)} free parameters)",
        fontsize=10,
    )
    if fit.relative:
        residual = counts - fit.expected
        bottom.set_ylabel("measured − fit")
    else:
        residual = (counts - fit.expected) / np.sqrt(counts + 1.0)
        bottom.set_ylabel("(measured − fit) / √(n+1)")
    bottom.plot(energy, np.where(fit.roi, residual, np.nan), lw=0.7, color="C0")
    bottom.plot(energy, np.where(fit.roi, np.nan, residual), lw=0.5, color="0.7")
    bottom.axhline(0, color="k", lw=0.6)
    fitted = np.abs(residual[fit.roi])
    if fitted.size and np.isfinite(fitted).all():  # the fitted channels set the scale
        bottom.set_ylim(-1.3 * fitted.max(), 1.3 * fitted.max())
    bottom.set_xlabel("detected energy (keV)")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# specinv rbs analyze

ANALYSIS_FILES = ("analysis.csv", "analysis.nc", "summary.png")


def add_analyze_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyse many measured spectra with a trained network (and refine them)",
        description=(
            "Analyse measured spectra with the networks of a workflow run (results/<name>): "
            "each file's setup is checked against the run's (ion, energy, angles, fluence; "
            "counts re-binned where the calibration differs), the run's preprocessing and "
            "networks estimate the areal densities with uncertainties, --refine refines them "
            "by Levenberg-Marquardt, and a chi2 test accepts or rejects each result. Files "
            "that cannot be analysed are reported with the reason; the others go on."
        ),
    )
    parser.add_argument("model", type=Path, help="a workflow run's results folder")
    parser.add_argument(
        "spectra", type=Path, nargs="+", help="spectrum files, or folders of them (all files)"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--size", type=int, help="training-set size of the networks (default: largest)"
    )
    parser.add_argument("--refine", action="store_true", help="refine by Levenberg-Marquardt")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="level of the chi2 acceptance test (0.05)"
    )
    parser.add_argument(
        "--figures", type=int, default=12, help="spectra with a figure of their own (first N)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier analysis in the folder"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    parser.set_defaults(func=analyze_command)


def spectrum_paths(items: list[Path]) -> list[Path]:
    """Files of ``items`` (a folder: its files, sorted; hidden files skipped)."""
    paths = []
    for item in items:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            paths.append(item)
    return paths


def analyze_command(args: argparse.Namespace) -> int:
    """``specinv rbs analyze``: options and the model are checked before any file is read;
    nothing in the output folder is replaced without ``--overwrite``."""
    from ...devices import check_device
    from .analyze import run_measured_analysis

    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha: expected a level in (0, 1), got {args.alpha}")
    if args.figures < 0:
        raise ConfigError(f"--figures: expected >= 0, got {args.figures}")
    out = args.output
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o/--output: {str(out)!r} is a file; expected a folder")
    earlier = [name for name in ANALYSIS_FILES if (out / name).exists()]
    if earlier and not args.overwrite:
        raise ConfigError(
            f"-o/--output: {out} already holds {', '.join(earlier)}; choose another folder or "
            "give --overwrite"
        )
    device = check_device(args.device, "--device")
    paths = spectrum_paths(args.spectra)
    if not paths:
        raise ConfigError("spectra: no files given (folders were empty)")
    print(
        run_measured_analysis(
            args.model,
            paths,
            out,
            size=args.size,
            refine=args.refine,
            alpha=args.alpha,
            figures=args.figures,
            device=device,
        )
    )
    print(f"{out}: analysis.csv, analysis.nc, summary.png written")
    return 0


def add_design_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "design",
        help="compare candidate setups by the information their spectra carry",
        description=(
            "For the sample structure and prior of a workflow configuration's rbs section, "
            "compare candidate setups (the configured experiment with keys changed; keys "
            "starting with sample. change the default prior) by the "
            "Cramer-Rao bounds of parameter sets drawn from the prior: per parameter the "
            "median relative error an efficient estimator would reach and the share of "
            "spectra that do not determine it. Writes design.csv (per setup and parameter), "
            "setups.csv (one row per setup) and design.png into the output folder."
        ),
    )
    parser.add_argument("config", type=Path, help="a workflow configuration with an rbs section")
    parser.add_argument(
        "--candidates",
        type=Path,
        help="YAML: setup name -> {dotted experiment key: value}, e.g. "
        "'4He 2 MeV: {beam.ion: 4He, beam.energy_keV: 2000}'; sample.prior.low/high "
        "change the default prior",
    )
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="one setup per value of one experiment key (repeatable), e.g. "
        "beam.energy_keV=2000,3000,4000",
    )
    parser.add_argument("-n", "--spectra", type=int, default=200, help="draws from the prior (200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (0)")
    parser.add_argument(
        "--first-channel",
        type=int,
        help="first channel of the region of interest (default: the configuration's "
        "preprocessing.first_channel)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.set_defaults(func=design_command)


def design_command(args: argparse.Namespace) -> int:
    """``specinv rbs design``: the configuration, candidates and options are all checked
    before the first bound is computed."""
    import pandas as pd

    from ...config import load_mapping_file
    from ...data.config import dataset_config
    from ...data.preprocess import preprocess_settings
    from ...fileio import atomic_path
    from .design import (
        changed_section,
        design_table,
        evaluate_setups,
        parse_candidates,
        plot_design,
        printable_design,
        setup_summary,
    )
    from .technique import RBSTechnique

    config = load_mapping_file(args.config, "configuration")
    if config.get("technique") != "rbs":
        raise ConfigError(f"{args.config}: technique {config.get('technique')!r}; expected rbs")
    cfg = dataset_config(config)
    first = args.first_channel
    if first is None:
        first = preprocess_settings(config, RBSTechnique.preprocessing_defaults).first_channel
    if args.spectra < 1:
        raise ConfigError(f"--spectra: expected >= 1, got {args.spectra}")
    document = None
    if args.candidates is not None:
        document = load_mapping_file(args.candidates, "candidates file")
    candidates = parse_candidates(document, args.vary)
    out = args.output
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o/--output: {str(out)!r} is a file; expected a folder")
    # every candidate is built (and so checked) before the bounds are computed
    for name, changes in candidates.items():
        try:
            RBSTechnique.from_config(changed_section(cfg.section, changes), device="cpu")
        except ConfigError as exc:
            raise ConfigError(f"candidate {name!r}: {exc}") from None
    results = evaluate_setups(
        cfg.section, candidates, n_spectra=args.spectra, seed=args.seed, first_channel=first
    )
    table = design_table(results)
    summary = setup_summary(results, table)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "design.csv") as tmp:
        table.to_csv(tmp)
    with atomic_path(out / "setups.csv") as tmp:
        summary.to_csv(tmp)
    with atomic_path(out / "design.png") as tmp:
        plot_design(table, tmp, f"{cfg.name}: {args.spectra} draws from the prior")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print("efficient MRE (%) / spectra that do not determine the parameter (%)")
        print(printable_design(table).to_string())
        print()
        print(summary.drop(columns="seconds").to_string(float_format="{:.3g}".format))
    print(f"{out}: design.csv, setups.csv, design.png written")
    return 0
