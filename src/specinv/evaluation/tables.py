"""The paper's tables, computed from predictions and fit results (pandas DataFrames).

Fit results are the datasets of :mod:`specinv.fitting.runner` (``estimate``, ``chi2``,
``n_simulations`` over ``sample``; attributes ``method``, ``dof``, ``wall_seconds``);
predictions are those of :func:`specinv.training.predict` (``mean``, ``std``, ``true``).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..fileio import atomic_path
from .information import efficient_median_relative_error
from .metrics import (
    acceptance_rate,
    chi2_profile,
    coverage_scores,
    ideal_chi2_profile,
    interval_coverage,
    median_relative_error,
    relative_error,
)
from .targets import targets_table


def method_labels(
    kind: str = "mdn", label: str = "MDN", fits: Mapping[str, xr.Dataset] | None = None
) -> dict[str, str]:
    """Display names of the fit methods for a network of model kind ``kind`` (display name
    ``label``): ``{"autofit": "Autofit", "mdn_autofit": "MDN + Autofit", …}``.  A
    refinement in ``fits`` that started from network + Autofit's result (its attribute
    ``start_method``) is "MDN + Autofit + gradient refinement", one with the network's
    prior (``refine_prior``) "… (network prior)", one that minimised the Poisson deviance
    "… (likelihood)" or, both, "… (likelihood, network prior)"."""
    refine = f"{kind}_refine"
    attrs = fits[refine].attrs if fits is not None and refine in fits else {}
    chained = "Autofit + " if attrs.get("start_method") == f"{kind}_autofit" else ""
    notes = [
        note
        for note, applies in (
            ("likelihood", attrs.get("statistic") == "deviance"),
            ("network prior", attrs.get("refine_prior") == "network"),
        )
        if applies
    ]
    prior = f" ({', '.join(notes)})" if notes else ""
    return {
        kind: label,
        "autofit": "Autofit",
        f"{kind}_autofit": f"{label} + Autofit",
        refine: f"{label} + {chained}gradient refinement{prior}",
    }


def _network(fit: xr.Dataset) -> tuple[str, str]:
    """(model kind, display label) of a network's back-simulation (its ``method``)."""
    kind = str(fit.attrs.get("method", "mdn"))
    return kind, str(fit.attrs.get("model_label", kind.upper()))


def mre_table(predictions: Mapping[int, xr.Dataset]) -> pd.DataFrame:
    """MRE per parameter (columns) for every training-set size (rows; Figs. 4–7)."""
    rows = {
        n: median_relative_error(p["mean"].values, p["true"].values)
        for n, p in sorted(predictions.items())
    }
    names = next(iter(predictions.values()))["param"].values.astype(str)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=names)
    out.index.name = "n_train"
    return out


def chi2_profile_table(fits: Mapping[str, xr.Dataset], alpha: float = 0.05) -> pd.DataFrame:
    """χ² percentiles, mean, std and acceptance of each fit (Tables 2–4, 6), with the ideal
    χ²_ν row (ν = RoI channels)."""
    rows, dof = {}, None
    for label, fit in fits.items():
        dof = int(fit.attrs["dof"])
        rows[label] = {
            **chi2_profile(fit["chi2"].values),
            "acceptance": acceptance_rate(fit["chi2"].values, dof, alpha),
            "spectra": fit.sizes["sample"],
        }
    if dof is not None:
        rows[f"ideal chi2 (nu={dof})"] = {
            **ideal_chi2_profile(dof),
            "acceptance": 1 - alpha,
            "spectra": np.nan,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


def coverage_table(predictions: xr.Dataset) -> pd.DataFrame:
    """Per parameter: ACS, empirical 1σ and 2σ coverage and MRE of the network (Table 5).

    A network without an uncertainty (a point-estimating CNN alone: ``std`` NaN) gets NaN
    scores, not a coverage of zero."""
    est, std, true = (predictions[k].values for k in ("mean", "std", "true"))
    has_std = np.isfinite(std).all(axis=0)
    safe = np.where(np.isfinite(std), std, 0.0)
    out = pd.DataFrame(
        {
            "ACS": np.where(has_std, coverage_scores(est, safe, true).mean(axis=0), np.nan),
            "coverage_1sigma": np.where(has_std, interval_coverage(est, safe, true, 1.0), np.nan),
            "coverage_2sigma": np.where(has_std, interval_coverage(est, safe, true, 2.0), np.nan),
            "MRE": median_relative_error(est, true),
        },
        index=pd.Index(predictions["param"].values.astype(str), name="param"),
    )
    return out


#: the accuracy threshold of Boulle & Debelle (2023): |relative error| below 10 %
ACCURACY_THRESHOLD = 0.1


def accuracy_table(
    rows: Mapping[str, xr.Dataset],
    derived_errors=None,
    threshold: float = ACCURACY_THRESHOLD,
) -> pd.DataFrame:
    """Accuracy a (Boulle & Debelle 2023, Table 2): per method (rows: datasets with
    ``estimate`` and ``true`` [sample, param]) and parameter, the share of spectra whose
    relative error |estimate − true| / |true| is below ``threshold`` (a true value of 0
    counts as accurate only when estimated exactly).

    ``derived_errors(estimate, true) -> {name: relative errors [n]}``: the technique's
    quantities derived from all parameters (XRD: e_max, the strain profile), reported as
    further columns; the ``spectra`` column says on how many spectra each row is.
    """
    out = {}
    for label, ds in rows.items():
        est, true = ds["estimate"].values, ds["true"].values
        rel = relative_error(est, true)
        row = {
            f"a({p})": float(np.mean(rel[:, j] < threshold))
            for j, p in enumerate(ds["param"].values.astype(str))
        }
        for name, err in (derived_errors(est, true) if derived_errors else {}).items():
            row[f"a({name})"] = float(np.mean(np.abs(err) < threshold))
        row["spectra"] = ds.sizes["sample"]
        out[label] = row
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "method"
    return table


def methods_table(
    fits: Mapping[str, xr.Dataset],
    alpha: float = 0.05,
    more: Mapping[str, xr.Dataset] | None = None,
) -> pd.DataFrame:
    """One row per method on the same test spectra: χ² percentiles, acceptance, MRE
    (median over spectra, per parameter and their maximum), simulations per spectrum and
    wall time (NaN for a fit restricted to part of the spectra it was run on: its wall
    time covers them all).  ``more``: rows appended below, each on its own spectra (the
    ``spectra`` column says how many)."""
    samples = [set(f["sample"].values.tolist()) for f in fits.values()]
    if samples and any(s != samples[0] for s in samples):
        raise ValueError("methods_table: the fits are not on the same test spectra")
    everything = {**fits, **(more or {})}
    profile = chi2_profile_table(everything, alpha)
    rows = {}
    for label, fit in everything.items():
        mre = median_relative_error(fit["estimate"].values, fit["true"].values)
        row = {
            k: profile.loc[label, k]
            for k in ("p5", "p25", "p50", "p75", "p95", "mean", "acceptance")
        }
        row.update(
            {
                "MRE_max": float(mre.max()),
                "MRE_median": float(np.median(mre)),
                "simulations_per_spectrum": float(fit["n_simulations"].mean()),
                "wall_seconds": (
                    float("nan")
                    if fit.attrs.get("restricted")
                    else float(fit.attrs["wall_seconds"])
                ),
                "spectra": fit.sizes["sample"],
            }
        )
        row.update(
            {
                f"MRE {p}": float(v)
                for p, v in zip(fit["param"].values.astype(str), mre, strict=True)
            }
        )
        rows[label] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "method"
    return out


def hardware_description() -> str:
    """The machine the workflow runs on (CPU, cores, GPU if any)."""
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    else:
        text += ", no GPU"
    return text


#: Hardware of the paper's run times (Muzakka et al. 2024, Table 1).
PAPER_HARDWARE = (
    "AMD Ryzen Threadripper PRO 5995WX, 64 cores (data, fits); Nvidia RTX A4000 (training)"
)


def runtime_table(
    stages: Mapping[str, Sequence[str | Path]],
    hardware: str,
    paper_hours: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Wall time of every stage (the sum over its jobs' Snakemake benchmark files, in
    seconds and hours; Table 1) and the hardware; with ``paper_hours`` (stage -> hours of
    the paper's Table 1) also the paper's times and the ratio ours / paper (a paper stage
    that this run lacks gets a row without our times)."""
    rows = {}
    for stage, files in stages.items():
        seconds = [float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in files]
        rows[stage] = {
            "jobs": len(seconds),
            "seconds": sum(seconds),
            "hours": sum(seconds) / 3600.0,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "stage"
    out["hardware"] = hardware
    if paper_hours:
        # the paper's stages that this run did not have (e.g. another training size) stay
        # as rows of their own, without our times
        missing = [k for k in paper_hours if k not in out.index]
        out = out.reindex([*out.index, *missing])
        out.index.name = "stage"
        out.loc[missing, "hardware"] = ""
        out["paper_hours"] = pd.Series(dict(paper_hours), dtype=float)
        out["ours_over_paper"] = out["hours"] / out["paper_hours"]
        out["paper_hardware"] = np.where(out["paper_hours"].notna(), PAPER_HARDWARE, "")
    return out


def write_table(table: pd.DataFrame, path: str | Path, float_format: str = "%.6g") -> Path:
    """CSV (atomically), and the same table as Markdown (``.md``) and as a small HTML page
    for the Snakemake report (``.html``) next to it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, float_format=float_format)
    with atomic_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(_markdown(table) + "\n")
    with atomic_path(path.with_suffix(".html")) as tmp:
        tmp.write_text(_html(table, title=path.stem))
    return path


def _html(table: pd.DataFrame, title: str) -> str:
    body = table.to_html(
        float_format=lambda v: f"{v:.4g}", na_rep="", border=0, classes="specinv-table"
    )
    style = (
        "table.specinv-table{border-collapse:collapse;font:13px sans-serif}"
        ".specinv-table th,.specinv-table td{padding:3px 8px;text-align:right;"
        "border-bottom:1px solid #ddd}.specinv-table thead th{background:#f2f2f2}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def _markdown(table: pd.DataFrame) -> str:
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *(fmt(v) for v in row.values)]) + " |")
    return "\n".join(lines)


def information_table(
    information: xr.Dataset, methods: Mapping[str, xr.Dataset] | None = None
) -> pd.DataFrame:
    """Per parameter: the information limit of the fitted test spectra and how close each
    method comes to it.

    Columns: ``CRLB_relative_std`` (median over spectra of the Cramér–Rao bound on the
    standard deviation over the true value), ``efficient_MRE`` (the median relative error
    of an unbiased estimator with Gaussian errors of that size,
    :func:`~specinv.evaluation.information.efficient_median_relative_error`),
    ``undetermined`` (share of spectra whose data do not determine the parameter: infinite
    bound), then ``MRE <method>`` for each of ``methods`` on the spectra it shares with
    the bound (their number added to the name where it fitted fewer).
    """
    true = np.abs(information["true"].values)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a true value of 0 (a B-spline weight) has no relative bound: left out
        rel = np.where(true > 0, information["crlb_std"].values / true, np.nan)
    known = ~np.isnan(rel)
    out = pd.DataFrame(
        {
            "CRLB_relative_std": [
                np.median(col[k]) if k.any() else np.nan
                for col, k in zip(rel.T, known.T, strict=True)
            ],
            "efficient_MRE": [
                efficient_median_relative_error(col[k]) if k.any() else np.nan
                for col, k in zip(rel.T, known.T, strict=True)
            ],
            "undetermined": np.isinf(rel).sum(axis=0) / np.maximum(known.sum(axis=0), 1),
        },
        index=pd.Index(information["param"].values.astype(str), name="param"),
    )
    samples = information["sample"].values
    for label, fit in (methods or {}).items():
        shared = np.intersect1d(fit["sample"].values, samples)
        if not len(shared):
            continue
        f = fit.sel(sample=shared)
        name = f"MRE {label}" + ("" if len(shared) == len(samples) else f" ({len(shared)} spectra)")
        out[name] = median_relative_error(f["estimate"].values, f["true"].values)
    return out


def methods_on_fitted_spectra(
    mdn: xr.Dataset, fits: Mapping[str, xr.Dataset], model_size: int, common: bool = True
) -> dict[str, xr.Dataset]:
    """The network's back-simulation (``mdn``: that of any model kind) and every fit by
    display label ("MDN50000", "Autofit", "MDN50000 + Autofit", …): the rows of the
    comparison.

    ``common``: all restricted to the test spectra that every fit has (the Autofit may fit
    fewer, see ``fitting.autofit_spectra``); a restricted fit is marked ``restricted`` in
    its attributes.  Otherwise every fit on all of its spectra, the MDN on the largest set.
    """
    sets = [f["sample"].values for f in fits.values()]
    if not sets:
        chosen = None
    elif common:
        shared = set.intersection(*(set(s.tolist()) for s in sets))
        chosen = np.array([s for s in max(sets, key=len) if s in shared])
    else:
        chosen = max(sets, key=len)

    def restrict(ds: xr.Dataset) -> xr.Dataset:
        if chosen is None or not common or ds.sizes["sample"] == len(chosen):
            return ds
        out = ds.sel(sample=chosen)
        out.attrs = {**ds.attrs, "restricted": 1}  # a new dict: ds keeps its own
        return out

    kind, label = _network(mdn)
    labels = method_labels(kind, label, fits)
    out = {f"{label}{model_size}": mdn if chosen is None else mdn.sel(sample=chosen)}
    out.update(
        {
            f"{label}{model_size} + {labels[m].removeprefix(label + ' + ')}"
            if m.startswith(f"{kind}_")
            else labels[m]: restrict(f)
            for m, f in fits.items()
        }
    )
    return out


def chi2_rows_of_networks(
    network_fits: Mapping[int, xr.Dataset], label: str
) -> dict[str, xr.Dataset]:
    """The network's back-simulations by display label ("MDN1000", …), smallest first."""
    return {f"{label}{n}": network_fits[n] for n in sorted(network_fits)}


def paper_tables(
    predictions: Mapping[int, xr.Dataset],
    network_fits: Mapping[int, xr.Dataset],
    fits: Mapping[str, xr.Dataset],
    model_size: int,
    alpha: float = 0.05,
    information: xr.Dataset | None = None,
    derived_errors=None,
    posterior: xr.Dataset | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of the evaluation.

    Args:
        predictions: the network's predictions of the test split per training-set size.
        network_fits: their back-simulations (χ² of the mean) per size.
        fits: fit results per method (``autofit``, ``mdn_autofit``, ``mdn_refine``), all
            on the same (first) test spectra.
        model_size: the training-set size of the network the fits start from.
        information: Cramér–Rao bounds of the fitted test spectra
            (:func:`specinv.fitting.runner.information_limit`), or None.
        derived_errors: the technique's ``derived_errors`` (for :func:`accuracy_table`).
        posterior: the reference posterior of some of the fitted spectra
            (:func:`specinv.fitting.posterior.reference_posterior`), or None.

    Returns:
        ``mre`` (Figs. 4–7), ``chi2`` (Tables 2–4: MDN per size on all test spectra, the
        fits on theirs, and the ideal χ²_ν), ``coverage`` (Table 5) and ``methods``
        (Table 6 and the comparison of all methods on the same spectra), ``accuracy``
        (the network per size on all test spectra, then every method on the fitted ones,
        and the "(all N)" rows of ``methods``: :func:`accuracy_table`); with
        ``information`` also ``information`` (:func:`information_table`) and ``targets``;
        with ``posterior`` also ``posterior``
        (:func:`specinv.evaluation.posterior.posterior_table`: every method that fitted
        the posterior's spectra, next to the posterior mean).
    """
    kind, label = _network(network_fits[model_size])
    labels = method_labels(kind, label, fits)
    chi2_rows = chi2_rows_of_networks(network_fits, label)
    chi2_rows.update({labels[m]: f for m, f in fits.items()})
    same = methods_on_fitted_spectra(network_fits[model_size], fits, model_size)
    own = methods_on_fitted_spectra(network_fits[model_size], fits, model_size, common=False)
    # methods that fitted more spectra than the comparison shares: also on all of theirs
    more = {
        f"{label} (all {ds.sizes['sample']})": ds
        for label, ds in own.items()
        if ds.sizes["sample"] > same[label].sizes["sample"]
    }
    tables = {
        "mre": mre_table(predictions),
        "chi2": chi2_profile_table(chi2_rows, alpha),
        "coverage": coverage_table(predictions[model_size]),
        "methods": methods_table(same, alpha, more=more),
        "accuracy": accuracy_table(
            {
                **chi2_rows_of_networks(network_fits, label),
                **{
                    (f"{k} (fitted spectra)" if k == f"{label}{model_size}" else k): v
                    for k, v in same.items()
                },
                **more,
            },
            derived_errors,
        ),
    }
    if information is not None:
        tables["information"] = information_table(information, own)
        network = f"{label}{model_size}"
        started = [
            k for k, ds in same.items() if str(ds.attrs.get("method", "")).startswith(f"{kind}_")
        ]
        refined = [k for k in started if same[k].attrs.get("method") == f"{kind}_refine"]
        tables["targets"] = targets_table(
            tables["information"],
            tables["coverage"],
            tables["methods"],
            network,
            refined[0],
            started,
        )
    if posterior is not None:
        from .posterior import posterior_table

        wanted = set(posterior["sample"].values.tolist())
        covering = {k: ds for k, ds in own.items() if wanted <= set(ds["sample"].values.tolist())}
        network = f"{label}{model_size}"
        tables["posterior"] = posterior_table(
            posterior,
            covering,
            information,
            network if network in covering and "std" in covering[network] else None,
        )
    return tables
