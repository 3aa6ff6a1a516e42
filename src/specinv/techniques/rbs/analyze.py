"""Many measured spectra through a trained network: ``specinv rbs analyze``.

A workflow run (``results/<name>``) holds networks trained on spectra of one setup (ion,
energy, angles, detector calibration, fluence) and sample structure.  A measured spectrum
can be analysed with them when its setup is that one:

1. every file is read (:func:`.measured.read_spectrum`) and checked against the run's
   setup: ion, beam energy, incidence and scattering angles and fluence within tolerances;
   the detector calibration is required (the channel ↔ energy relation) and, where it
   differs from the run's, the counts are re-binned onto the run's channels (each file
   channel's counts spread evenly over its energy width); the file must cover the energies
   of the run's region of interest.  A file that fails gets a one-line reason and the
   others go on.
2. the run's preprocessing and networks give the estimates and their uncertainties;
3. optionally Levenberg–Marquardt refines them through the simulator, with the Fisher
   information at the refined values as uncertainties;
4. the Poisson χ² over the run's region of interest decides acceptance: χ² at most the
   (1 − α) quantile of χ²_ν, ν the region's channels (the workflow's own test).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from ...config.errors import ConfigError
from ...fileio import atomic_path
from ...physics.rbs import Setup
from ...physics.rbs.experiment import ExperimentError, beam_ion, setup_from_fields
from ...training.runs import NetworkRun, load_network_run, predict_spectra
from .measured import MeasuredFileError, MeasuredSpectrum, read_spectrum
from .technique import RBSTechnique


@dataclass(frozen=True)
class Tolerances:
    """How far a file's setup may be from the run's and still be analysed.

    Attributes:
        beam_energy_relative: |ΔE₀| / E₀.
        angle_deg: incidence, scattering and exit angles.
        fluence_relative: |ΔQ| / Q where the file states a fluence (the networks were
            trained at one fluence × solid angle).
        calibration_channels: a calibration whose energies differ from the run's by less
            than this many channels at every channel of the region of interest is the
            run's (no re-binning).
    """

    beam_energy_relative: float = 0.005
    angle_deg: float = 0.5
    fluence_relative: float = 0.02
    calibration_channels: float = 0.01


@dataclass(frozen=True)
class AnalysisModel:
    """A run's networks with what analysing a spectrum needs: the technique (setup,
    structure, prior box, simulator) and the region of interest [C] of its preprocessing."""

    run: NetworkRun
    technique: RBSTechnique
    roi: np.ndarray

    @property
    def setup(self) -> Setup:
        return self.technique.setup


def load_analysis_model(model_dir: str | Path, size: int | None = None, device=None):
    """The networks of ``model_dir`` (a workflow run's ``results/<name>``) of training-set
    size ``size`` (None: the largest).

    Raises:
        ConfigError: not an RBS run, or its files are missing.
    """
    from ...data import SpectrumTransform
    from ...evaluation.metrics import roi_mask
    from ..priors import Prior

    run = load_network_run(model_dir, "rbs", size)
    described = run.forward_model
    with xr.open_dataset(run.test_path, engine="h5netcdf") as ds:
        priors = [Prior(**p) for p in json.loads(ds.attrs["priors"])]
        n_channels = ds.sizes["channel"]
    try:
        setup = setup_from_fields(described["setup"])
    except (ExperimentError, KeyError, TypeError) as exc:
        raise ConfigError(f"{model_dir}: the run's setup cannot be read ({exc})") from None
    technique = RBSTechnique(
        setup, described["structure"], priors, device=device, dtype=torch.float64
    )
    transform = SpectrumTransform.load(run.transform_path)
    s = transform.settings
    roi = roi_mask(n_channels, s.first_channel, s.merge, transform.kept_bins)
    return AnalysisModel(run, technique, roi)


# ---------------------------------------------------------------------------------------
# one file onto the run's channels


def _differs(what: str, file_value, run_value, tolerance: float, unit: str) -> str:
    return (
        f"{what} {file_value:g}{unit} differs from the model's {run_value:g}{unit} by more "
        f"than {tolerance:g}{unit}"
    )


def check_setup(spectrum: MeasuredSpectrum, setup: Setup, tol: Tolerances) -> list[str]:
    """Notes on what the file does not state (the run's value is assumed).

    Raises:
        MeasuredFileError: naming the file and the first value out of tolerance.
    """

    def fail(message: str) -> MeasuredFileError:
        return MeasuredFileError(f"{spectrum.path}: {message}")

    notes = []
    if spectrum.relative:
        raise fail(
            "relative counts (not whole numbers); the networks expect counts at the model's "
            f"fluence × solid angle ({setup.fluence_times_solid_angle_sr:g} particles·sr)"
        )
    if spectrum.ion is None:
        notes.append(f"ion not stated: {setup.ion} assumed")
    else:
        try:
            ion = beam_ion(spectrum.ion, "beam ion")
        except ExperimentError as exc:
            raise fail(str(exc)) from None
        model = beam_ion(setup.ion)
        if (ion.Z, round(ion.mass_u)) != (model.Z, round(model.mass_u)):
            raise fail(f"beam ion {spectrum.ion}; the model was trained for {setup.ion}")
    checks = [
        ("beam energy", spectrum.beam_energy_keV, setup.beam_energy_keV, " keV"),
        ("incidence angle", spectrum.incidence_deg, setup.incidence_deg, " deg"),
        ("scattering angle", spectrum.scattering_deg, setup.scattering_deg, " deg"),
        ("exit angle", spectrum.exit_deg, setup.exit_angle_deg, " deg"),
    ]
    for what, value, expected, unit in checks:
        if value is None:
            if what != "exit angle":
                notes.append(f"{what} not stated: the model's {expected:g}{unit} assumed")
            continue
        tolerance = tol.beam_energy_relative * expected if what == "beam energy" else tol.angle_deg
        if abs(value - expected) > tolerance:
            raise fail(_differs(what, value, expected, tolerance, unit))
    if spectrum.fluence is not None and spectrum.solid_angle_msr is not None:
        q_omega = spectrum.fluence * spectrum.solid_angle_msr * 1e-3
        expected = setup.fluence_times_solid_angle_sr
        if abs(q_omega / expected - 1.0) > tol.fluence_relative:
            raise fail(
                f"fluence × solid angle {q_omega:g} particles·sr differs from the model's "
                f"{expected:g} by more than {100 * tol.fluence_relative:g} %"
            )
    return notes


def counts_on_model_channels(
    spectrum: MeasuredSpectrum, setup: Setup, roi: np.ndarray, tol: Tolerances
) -> tuple[np.ndarray, bool]:
    """The file's counts on the run's channels [C], and whether they were re-binned.

    Raises:
        MeasuredFileError: no calibration, or the file does not cover the region of
            interest (naming both energy ranges, or the channel counts).
    """
    det = setup.detector
    n = det.channels
    cal = spectrum.calibration
    if cal is None:
        raise MeasuredFileError(
            f"{spectrum.path}: no energy calibration in the file; expected one (the model's "
            f"is {det.offset_keV:g} keV + {det.gain_keV_per_channel:g} keV/channel)"
        )
    first, last = (int(i) for i in np.nonzero(roi)[0][[0, -1]])
    chi = np.arange(first, last + 2, dtype=np.float64)
    model_energy = det.channel_energy(chi)
    file_energy = cal.energy_keV(chi)
    same = np.all(
        np.abs(file_energy - model_energy) <= tol.calibration_channels * (det.gain_keV_per_channel)
    )
    file_end = spectrum.first_channel + spectrum.n_channels
    if same:
        if file_end < last + 1 or spectrum.first_channel > first:
            raise MeasuredFileError(
                f"{spectrum.path}: channels {spectrum.first_channel}-{file_end - 1}; the model "
                f"needs channels {first}-{last} ({n} channels of its calibration)"
            )
        out = np.zeros(n)
        lo, hi = spectrum.first_channel, min(file_end, n)
        out[lo:hi] = spectrum.counts[: hi - lo]
        return out, False
    # re-bin: cumulative counts at the file's channel edges, linear in energy in between
    edges = cal.energy_keV(np.arange(spectrum.first_channel, file_end + 1, dtype=np.float64))
    if np.any(np.diff(edges) <= 0):
        raise MeasuredFileError(f"{spectrum.path}: the calibration decreases over the channels")
    need = det.channel_energy(np.array([first, last + 1], dtype=np.float64))
    if edges[0] > need[0] or edges[-1] < need[1]:
        raise MeasuredFileError(
            f"{spectrum.path}: covers {edges[0]:.1f}-{edges[-1]:.1f} keV; the model's region "
            f"of interest needs {need[0]:.1f}-{need[1]:.1f} keV (channels {first}-{last})"
        )
    cumulative = np.concatenate([[0.0], np.cumsum(spectrum.counts)])
    model_edges = det.channel_energy(np.arange(n + 1, dtype=np.float64))
    inside = np.interp(model_edges, edges, cumulative)
    return np.diff(inside), True


# ---------------------------------------------------------------------------------------
# many files


@dataclass
class Analysis:
    """What :func:`analyze_spectra` found: ``table`` (a dataset over ``spectrum`` and
    ``param``) for the files analysed, ``failures`` (path, reason) for the others, and the
    analysed files' counts on the run's channels and the spectra of their final estimates
    ([N, C] each, for the figures)."""

    table: xr.Dataset
    failures: list[tuple[str, str]]
    counts: np.ndarray
    fitted: np.ndarray


def read_compatible(
    model: AnalysisModel, paths: Sequence[Path], tol: Tolerances, progress: bool = True
):
    """(paths, counts [N, C], notes, re-binned) of the files that can be analysed, and the
    (path, reason) of those that cannot."""
    good, rows, notes, rebinned, failures = [], [], [], [], []
    for path in tqdm(paths, desc="reading", unit="file", disable=not progress, file=sys.stderr):
        try:
            spectrum = read_spectrum(path)
            file_notes = check_setup(spectrum, model.setup, tol)
            counts, moved = counts_on_model_channels(spectrum, model.setup, model.roi, tol)
        except MeasuredFileError as exc:
            failures.append((str(path), str(exc)))
            continue
        except OSError as exc:
            failures.append((str(path), f"{path}: cannot be read ({exc.strerror or exc})"))
            continue
        good.append(str(path))
        rows.append(counts)
        notes.append("; ".join(file_notes))
        rebinned.append(moved)
    counts = np.array(rows) if rows else np.zeros((0, model.setup.detector.channels))
    return good, counts, notes, np.array(rebinned, dtype=bool), failures


def analyze_spectra(
    model: AnalysisModel,
    paths: Sequence[str | Path],
    *,
    refine: bool = False,
    alpha: float = 0.05,
    tolerances: Tolerances = Tolerances(),
    max_iterations: int = 20,
    progress: bool = True,
) -> Analysis:
    """Estimate, optionally refine, and test every spectrum of ``paths``."""
    from ...evaluation.information import cramer_rao_std, poisson_fisher_information
    from ...evaluation.metrics import chi2_threshold
    from ...fitting.derivatives import spectra_and_jacobian
    from ...fitting.levenberg_marquardt import refine_levenberg_marquardt
    from ...fitting.problem import SpectrumFitProblem
    from ...fitting.runner import parameter_bounds

    t0 = time.perf_counter()
    good, counts, notes, rebinned, failures = read_compatible(
        model, [Path(p) for p in paths], tolerances, progress
    )
    seconds = {"reading": time.perf_counter() - t0}
    names = model.run.parameter_names
    dof = int(model.roi.sum())
    threshold = chi2_threshold(dof, alpha)
    technique = model.technique
    low, high = parameter_bounds(technique)
    data = {
        "file": ("spectrum", np.array(good, dtype=object)),
        "notes": ("spectrum", np.array(notes, dtype=object)),
        "rebinned": ("spectrum", rebinned),
    }
    fitted = np.zeros_like(counts)
    if len(good):
        t1 = time.perf_counter()
        pred = predict_spectra(model.run, counts)
        estimate = pred["mean"].values
        std = pred["std"].values
        seconds["networks"] = time.perf_counter() - t1
        problem = SpectrumFitProblem(
            technique.simulate,
            counts,
            model.roi,
            low,
            high,
            dtype=technique.dtype,
            device=technique.device,
            partial=technique.partial_simulation(),
        )
        rows = np.arange(len(good))
        t1 = time.perf_counter()
        start = np.clip(estimate, low, high)
        chi2 = problem.chi2(start, rows)
        seconds["back-simulation"] = time.perf_counter() - t1
        data.update(
            estimate=(("spectrum", "param"), estimate),
            std=(("spectrum", "param"), std),
            chi2=("spectrum", chi2),
            accepted=("spectrum", chi2 <= threshold),
        )
        final = start
        if refine:
            t1 = time.perf_counter()
            res = refine_levenberg_marquardt(
                problem, start, max_iterations=max_iterations, chi2_tol=0.1, progress=progress
            )
            final = res.x
            expected, jac = spectra_and_jacobian(
                technique.simulate, final, low, high, dtype=technique.dtype
            )
            fisher = poisson_fisher_information(expected, jac, model.roi)
            data.update(
                refined=(("spectrum", "param"), res.x),
                refined_std=(("spectrum", "param"), cramer_rao_std(fisher)),
                refined_chi2=("spectrum", res.chi2),
                refined_accepted=("spectrum", res.chi2 <= threshold),
                iterations=("spectrum", res.n_iterations),
            )
            seconds["refinement"] = time.perf_counter() - t1
        if refine:
            fitted = expected
        else:
            with torch.no_grad():
                fitted = technique.simulate(torch.as_tensor(final, dtype=technique.dtype))
                fitted = fitted.cpu().numpy()
    seconds["total"] = time.perf_counter() - t0
    table = xr.Dataset(
        data,
        coords={"spectrum": np.arange(len(good)), "param": names},
        attrs={
            "model": str(model.run.checkpoints[0].parent.parent),
            "training_size": model.run.size,
            "dof": dof,
            "alpha": alpha,
            "chi2_threshold": threshold,
            "refined": int(refine),
            "failed_files": len(failures),
            "seconds": json.dumps(seconds),
            "units": "1e15 atoms/cm2",
        },
    )
    return Analysis(table, failures, counts, fitted)


def run_measured_analysis(
    results: str | Path,
    spectra: Sequence[str | Path],
    out: str | Path,
    *,
    size: int | None = None,
    refine: bool = False,
    alpha: float = 0.05,
    figures: int = 12,
    progress: bool = True,
    device=None,
) -> str:
    """Analyse the files ``spectra`` with the networks of the run in ``results`` and write
    ``analysis.csv``, ``analysis.nc``, ``summary.png`` and ``figures/`` into ``out``
    (:meth:`Technique.measured_analysis`); returns :func:`summary_line`.  The files that
    cannot be analysed are printed to stderr, one line each."""
    model = load_analysis_model(results, size, device=device)
    analysis = analyze_spectra(model, spectra, refine=refine, alpha=alpha, progress=progress)
    for _, reason in analysis.failures:
        print(f"skipped: {reason}", file=sys.stderr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_analysis(out, analysis)
    plot_analysis(out, model, analysis, figures)
    return summary_line(analysis)


def summary_line(analysis: Analysis) -> str:
    t = analysis.table
    n = t.sizes["spectrum"]
    parts = [f"{n} spectra analysed, {len(analysis.failures)} failed"]
    if n:
        parts.append(f"accepted {100 * float(t['accepted'].mean()):.1f} % (network)")
        if "refined_accepted" in t:
            parts.append(f"{100 * float(t['refined_accepted'].mean()):.1f} % (refined)")
    seconds = json.loads(t.attrs["seconds"])
    parts.append(", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------
# outputs


def write_analysis(out: Path, analysis: Analysis) -> None:
    """One CSV row per file (the failed ones with their reason) and the NetCDF table."""
    import pandas as pd

    t = analysis.table
    names = [str(p) for p in t["param"].values]
    frame = pd.DataFrame({"file": t["file"].values.astype(str), "status": "analysed"})
    frame["reason"] = t["notes"].values.astype(str)
    for var in ("estimate", "std", "refined", "refined_std"):
        if var in t:
            for j, name in enumerate(names):
                frame[f"{var}:{name}"] = t[var].values[:, j]
    for var in ("chi2", "accepted", "refined_chi2", "refined_accepted", "iterations"):
        if var in t:
            frame[var] = t[var].values
    frame["dof"] = t.attrs["dof"]
    failed = pd.DataFrame(
        {
            "file": [p for p, _ in analysis.failures],
            "status": "failed",
            "reason": [r for _, r in analysis.failures],
        },
        columns=["file", "status", "reason"],
    )
    table = pd.concat([frame, failed], ignore_index=True) if len(failed) else frame
    with atomic_path(out / "analysis.csv") as tmp:
        table.to_csv(tmp, index=False)
    ds = t.copy()
    ds["file"] = ds["file"].astype(str)
    ds["notes"] = ds["notes"].astype(str)
    ds.attrs["failures"] = json.dumps(analysis.failures)
    with atomic_path(out / "analysis.nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def plot_analysis(out: Path, model: AnalysisModel, analysis: Analysis, n_figures: int) -> None:
    """summary.png (reduced χ² and estimates of all spectra) and figures/<file>.png for
    the first ``n_figures`` spectra (measured, estimated spectrum, residuals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = analysis.table
    n = t.sizes["spectrum"]
    dof = t.attrs["dof"]
    names = [str(p) for p in t["param"].values]
    fig, axes = plt.subplots(
        1, 1 + len(names), figsize=(3.2 * (1 + len(names)), 3.2), constrained_layout=True
    )
    ax = axes[0]
    final = "refined" if "refined" in t else "estimate"
    chi2 = t["refined_chi2" if final == "refined" else "chi2"].values
    accepted = t["refined_accepted" if final == "refined" else "accepted"].values
    if n:
        ax.hist(chi2 / dof, bins=40, color="C0")
        ax.axvline(
            t.attrs["chi2_threshold"] / dof,
            color="C3",
            lw=1,
            label=f"acceptance (α = {t.attrs['alpha']:g})",
        )
        ax.legend(fontsize=7)
    ax.set_xlabel("reduced χ²")
    ax.set_ylabel("spectra")
    ax.set_title(f"{n} spectra, {100 * accepted.mean() if n else 0:.0f} % accepted", fontsize=9)
    for j, name in enumerate(names):
        ax = axes[1 + j]
        if n:
            ax.hist(t[final].values[:, j], bins=40, color="C2")
        ax.set_xlabel(f"{name} (1e15 at/cm²)")
    which = "refined" if final == "refined" else "network"
    fig.suptitle(
        f"{t.attrs['model']} (n = {t.attrs['training_size']}): {which} estimates", fontsize=9
    )
    with atomic_path(out / "summary.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

    det = model.setup.detector
    energy = det.channel_energy(np.arange(det.channels, dtype=float))
    roi = model.roi
    for i in range(min(n_figures, n)):
        fig, (top, bottom) = plt.subplots(
            2, 1, figsize=(8, 5), sharex=True, height_ratios=[3, 1], constrained_layout=True
        )
        x = analysis.counts[i]
        s = analysis.fitted[i]
        top.plot(energy, x, ".", ms=2, color="0.45", label="measured")
        top.plot(energy, s, color="C3", lw=1.1, label=final)
        top.set_ylabel("counts per channel")
        top.legend(fontsize=8)
        values = ", ".join(f"{nm} {v:.4g}" for nm, v in zip(names, t[final].values[i], strict=True))
        top.set_title(
            f"{Path(str(t['file'].values[i])).name}: χ²/ν {chi2[i] / dof:.3f} "
            f"({'accepted' if accepted[i] else 'rejected'})\n{values}",
            fontsize=8,
        )
        r = np.where(roi, (x - s) / np.sqrt(x + 1.0), np.nan)
        bottom.plot(energy, r, lw=0.6)
        bottom.axhline(0, color="k", lw=0.5)
        bottom.set_ylabel("(n − s)/√(n+1)")
        bottom.set_xlabel("detected energy (keV)")
        path = out / "figures" / f"{i:05d}_{Path(str(t['file'].values[i])).stem}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
