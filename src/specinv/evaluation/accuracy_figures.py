"""Accuracy figures of a regression technique (Boulle & Debelle 2023, Figs. 1, 3, 4 and 7):
accuracy a against the training-set size, estimates against true values with the
distributions of their relative errors, and example depth profiles of the fitted spectra.

Accuracy a is the share of test spectra whose |relative error| is below 0.1
(:func:`~specinv.evaluation.tables.accuracy_table`, the same definition, true zeros
included).  The technique says which parameters are drawn one by one
(:meth:`~specinv.techniques.Technique.figure_parameters`), which quantities it derives from
all of them (:meth:`~specinv.techniques.Technique.derived_errors`) and whether it has depth
profiles (:meth:`~specinv.techniques.Technique.depth_profiles`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from .figures import _pyplot, _save
from .metrics import median_relative_error, profile_errors, signed_relative_error
from .tables import ACCURACY_THRESHOLD, accuracy_table

if TYPE_CHECKING:
    from ..techniques.base import Technique

#: relative errors of derived quantities: (estimate [n, D], true [n, D]) -> {name: [n]}
DerivedErrors = Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray]]
#: the paper's Fig. 3 draws 15 000 of its 150 000 test spectra
MAX_POINTS = 15_000
#: (colour, line style, marker) of the derived quantities, thick (the parameters: colours)
_DERIVED_STYLES = (("k", "-", "s"), ("k", "--", "D"), ("0.4", "-", "^"), ("0.4", "--", "v"))


def parameter_groups(names: Sequence[str], shown: Sequence[str]) -> tuple[list[str], list[str]]:
    """(parameters drawn one by one, in ``shown``'s order; the others, in ``names``' order).

    Raises:
        ValueError: naming a shown parameter that is not one of ``names``.
    """
    unknown = [s for s in shown if s not in names]
    if unknown:
        raise ValueError(
            f"figure parameters: {', '.join(map(repr, unknown))} not among the parameters "
            f"({', '.join(names)})"
        )
    return list(shown), [n for n in names if n not in shown]


def accuracy_vs_training_size(
    predictions: Mapping[int, xr.Dataset],
    derived_errors: DerivedErrors | None = None,
    threshold: float = ACCURACY_THRESHOLD,
) -> pd.DataFrame:
    """Accuracy a (share of test spectra with |relative error| < ``threshold``) of the
    network's estimate (``mean``) per parameter, then per derived quantity (columns), for
    every training-set size (rows, ascending; index ``n_train``)."""
    rows = {
        n: xr.Dataset({"estimate": p["mean"], "true": p["true"]})
        for n, p in sorted(predictions.items())
    }
    table = accuracy_table(rows, derived_errors, threshold).drop(columns="spectra")
    table.columns = [c.removeprefix("a(").removesuffix(")") for c in table.columns]
    table.index = pd.Index(sorted(predictions), name="n_train")
    return table


def relative_errors(
    estimate: np.ndarray,
    true: np.ndarray,
    names: Sequence[str],
    chosen: Sequence[str],
    derived_errors: DerivedErrors | None = None,
) -> dict[str, np.ndarray]:
    """Signed relative errors [n] (estimate − true)/|true| of the ``chosen`` parameters
    (columns of ``estimate`` and ``true`` [n, D], named ``names``), then those of the
    derived quantities (±infinite: a true 0 estimated inexactly, as in the accuracy)."""
    errors = signed_relative_error(estimate, true)
    out = {p: errors[:, list(names).index(p)] for p in chosen}
    if derived_errors is not None:
        out.update(
            {k: np.asarray(v, dtype=float) for k, v in derived_errors(estimate, true).items()}
        )
    return out


def _styles(shown: Sequence[str], derived: Sequence[str]) -> dict[str, dict]:
    """Line style of every quantity: shown parameters in colour (tab10, then tab20), derived
    quantities in black and grey with thicker lines."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
    out = {
        p: {"color": cmap(i % cmap.N), "ls": "-" if i < cmap.N else "--", "marker": "o", "lw": 1.4}
        for i, p in enumerate(shown)
    }
    for i, d in enumerate(derived):
        color, ls, marker = _DERIVED_STYLES[i % len(_DERIVED_STYLES)]
        out[d] = {"color": color, "ls": ls, "marker": marker, "lw": 2.2}
    return out


def _span(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} … {names[-1]}"


def plot_accuracy_vs_training_size(
    accuracy: pd.DataFrame,
    shown: Sequence[str],
    derived: Sequence[str],
    paths: Sequence[str | Path],
    title: str = "",
    threshold: float = ACCURACY_THRESHOLD,
) -> None:
    """Accuracy a of every quantity against the number of training spectra (log axis; the
    paper's Fig. 7b): one line per ``shown`` parameter and per ``derived`` quantity; the
    other columns of ``accuracy`` (those the technique does not show one by one) as thin grey
    lines, with their mean as one dotted line.

    Args:
        accuracy: :func:`accuracy_vs_training_size` (rows: sizes; columns: quantities).
    """
    plt = _pyplot()
    others = [c for c in accuracy.columns if c not in shown and c not in derived]
    sizes = accuracy.index.to_numpy()
    fig, ax = plt.subplots(figsize=(8.6, 4.8))
    for i, name in enumerate(others):
        ax.plot(
            sizes,
            accuracy[name],
            "-",
            color="0.8",
            lw=0.8,
            label=f"{_span(others)} (each)" if i == 0 else None,
        )
    if others:
        ax.plot(
            sizes,
            accuracy[others].mean(axis=1),
            ":",
            color="0.45",
            lw=1.8,
            label=f"mean of {_span(others)}",
        )
    for name, style in _styles(shown, derived).items():
        ax.plot(sizes, accuracy[name], ms=5, label=name, **style)
    ax.set_xscale("log")
    # the sweep's sizes as the ticks, in plain numbers
    ax.set_xticks(sizes, [f"{n:,}".replace(",", " ") for n in sizes])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    ax.set_ylim(-0.02, 1.02)  # a line at 0 or 1 stays visible
    ax.set_xlabel("training spectra")
    ax.set_ylabel(f"accuracy a (share with |relative error| < {threshold:g})")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    entries = len(shown) + len(derived) + 2 * bool(others)
    ax.legend(
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        ncol=1 if entries <= 18 else 2,
    )
    _save(fig, paths)


def _chosen_parameters(
    shown: Sequence[str],
    names: Sequence[str],
    estimate: np.ndarray,
    true: np.ndarray,
    max_panels: int,
) -> list[str]:
    """``shown``, or with more than ``max_panels`` of them the best and worst predicted
    half (by median relative error)."""
    if len(shown) <= max_panels:
        return list(shown)
    idx = [list(names).index(p) for p in shown]
    order = np.argsort(median_relative_error(estimate[:, idx], true[:, idx]), kind="stable")
    keep = np.concatenate([order[: max_panels // 2], order[-(max_panels - max_panels // 2) :]])
    return [shown[k] for k in keep]


def _axis_label(name: str, unit: str) -> str:
    return name if unit in ("", "1") else f"{name} ({unit})"


def plot_predicted_vs_true(
    estimate: np.ndarray,
    true: np.ndarray,
    names: Sequence[str],
    units: Sequence[str],
    shown: Sequence[str],
    paths: Sequence[str | Path],
    derived_errors: DerivedErrors | None = None,
    title: str = "",
    threshold: float = ACCURACY_THRESHOLD,
    max_points: int = MAX_POINTS,
    max_panels: int = 16,
    seed: int = 0,
) -> None:
    """The paper's Fig. 3 for the test spectra: (a) estimate against true value per shown
    parameter (at most ``max_points`` random spectra; the line y = x), (b) violins of the
    signed relative errors of every shown parameter and derived quantity with their 10, 50
    and 90 % percentiles, (c) the cumulative fraction of |relative error| with the accuracy
    threshold: a curve's height there is the quantity's accuracy a.

    Args:
        estimate, true: [n, D] in the parameters' units (``names``, ``units`` [D]).
        shown: the parameters drawn one by one (more than ``max_panels``: the best and worst
            predicted half).
        derived_errors: the technique's relative errors of derived quantities.
    """
    plt = _pyplot()
    estimate, true = np.asarray(estimate, dtype=float), np.asarray(true, dtype=float)
    shown, _ = parameter_groups(names, shown)
    chosen = _chosen_parameters(shown, names, estimate, true, max_panels)
    errors = relative_errors(estimate, true, names, chosen, derived_errors)
    derived = [k for k in errors if k not in chosen]
    styles = _styles(chosen, derived)
    n = len(true)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_points), replace=False))
    ncol = min(5, len(chosen))
    nrow = -(-len(chosen) // ncol)
    height = 3.1 * nrow + 4.9
    fig = plt.figure(figsize=(max(3.3 * ncol, 11.0), height))
    grid = fig.add_gridspec(
        nrow + 1,
        1,
        height_ratios=[3.1] * nrow + [4.0],
        hspace=0.45,
        top=1 - 0.95 / height,
        bottom=0.75 / height,
    )
    top = grid[:nrow].subgridspec(nrow, ncol, wspace=0.35, hspace=0.5)
    bottom = grid[nrow].subgridspec(1, 2, width_ratios=[1.25, 1.0], wspace=0.22)
    for k, p in enumerate(chosen):
        ax = fig.add_subplot(top[k // ncol, k % ncol])
        j = list(names).index(p)
        x, y = true[pick, j], estimate[pick, j]
        ax.plot(x, y, ".", ms=2.5 if len(pick) < 2000 else 1.0, alpha=0.5, color=styles[p]["color"])
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlabel(f"true {_axis_label(p, units[j])}", fontsize=8)
        ax.set_ylabel("estimate", fontsize=8)
        ax.tick_params(labelsize=7)
        acc = float(np.mean(np.abs(errors[p]) < threshold))
        ax.set_title(f"{p}: a = {acc:.2f}", fontsize=9)
    _violins(fig.add_subplot(bottom[0]), errors, styles, threshold)
    _cumulative(fig.add_subplot(bottom[1]), errors, styles, threshold)
    shown_points = f"{len(pick)} of {n}" if len(pick) < n else f"all {n}"
    which = (
        f"; the {len(chosen)} best and worst predicted of {len(shown)} parameters"
        if len(chosen) < len(shown)
        else ""
    )
    fig.suptitle(f"{title}\n(estimates of {shown_points} test spectra{which})", fontsize=11)
    _save(fig, paths)


def _violins(ax, errors: Mapping[str, np.ndarray], styles: Mapping[str, dict], threshold: float):
    """Violins of the signed relative errors (their central 98 %), the 10/50/90 % percentiles
    of all finite values as ticks, ±threshold dotted; infinite errors counted in the labels."""
    labels = []
    for i, (name, err) in enumerate(errors.items()):
        finite = err[np.isfinite(err)]
        infinite = len(err) - len(finite)
        labels.append(name + (f"\n({infinite} infinite)" if infinite else ""))
        if len(finite) == 0:
            continue
        lo, hi = np.percentile(finite, [1, 99])
        body = finite[(finite >= lo) & (finite <= hi)]
        if len(body) > 1 and np.ptp(body) > 0:
            parts = ax.violinplot(body, positions=[i], widths=0.8, showextrema=False)
            for b in parts["bodies"]:
                b.set_facecolor(styles[name]["color"])
                b.set_edgecolor(styles[name]["color"])
                b.set_alpha(0.45)
        for q, v in zip((10, 50, 90), np.percentile(finite, [10, 50, 90]), strict=True):
            ax.hlines(v, i - 0.3, i + 0.3, color="k", lw=1.6 if q == 50 else 0.9)
    for side in (-1, 1):
        ax.axhline(side * threshold, color="0.3", ls=":", lw=0.9)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("relative error (estimate − true)/|true|")
    ax.set_title("relative errors: 10, 50, 90 % percentiles (central 98 % drawn)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def _cumulative(
    ax,
    errors: Mapping[str, np.ndarray],
    styles: Mapping[str, dict],
    threshold: float,
    max_steps: int = 2000,
):
    """Cumulative fraction of |relative error| (log axis) with the accuracy threshold (each
    curve drawn through at most ``max_steps`` of its spectra)."""
    positive = np.concatenate([np.abs(e)[np.isfinite(e) & (e != 0)] for e in errors.values()])
    # from the smallest errors (but showing the threshold) to the largest but a few
    low = (
        min(max(1e-5, float(np.percentile(positive, 0.5))), threshold / 3)
        if positive.size
        else 1e-3
    )
    high = max(10 * threshold, float(np.percentile(positive, 99.5))) if positive.size else 1.0
    for name, err in errors.items():
        value = np.sort(np.abs(err))
        frac = np.arange(1, len(value) + 1) / len(value)
        if len(value) > max_steps:  # the curve at evenly spaced ranks
            keep = np.linspace(0, len(value) - 1, max_steps).round().astype(int)
            value, frac = value[keep], frac[keep]
        acc = float(np.mean(np.abs(err) < threshold))
        style = styles[name]
        ax.step(
            np.clip(value, low, None),
            frac,
            where="post",
            color=style["color"],
            ls=style["ls"],
            lw=style["lw"],
            label=f"{name}: a = {acc:.2f}",
        )
    ax.axvline(threshold, color="0.3", ls=":", lw=0.9)
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("|relative error|")
    ax.set_ylabel("fraction of test spectra with a smaller error")
    ax.set_title(f"cumulative fraction; a = height at {threshold:g}", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=1 if len(errors) <= 10 else 2)


# ---------------------------------------------------------------------- depth profiles
def example_indices(errors: np.ndarray) -> list[int]:
    """Positions of the lowest, median and highest of ``errors`` (distinct, in that order;
    fewer for fewer than three values)."""
    order = np.argsort(errors, kind="stable")
    picks = [order[0], order[len(order) // 2], order[-1]] if len(order) else []
    return list(dict.fromkeys(int(k) for k in picks))


@dataclass(frozen=True)
class ProfileExample:
    """One row of the profile figure.

    Attributes:
        sample: the test spectrum's id; caption: what is special about it.
        observed: its measured counts [C]; curves: label -> simulated counts [C] of an
            estimate.
        true_profile: (depths [P], values [P]); profiles: label -> (depths, values) of the
            estimates (the same labels as ``curves``).
        errors: label -> profile error (:func:`profile_errors`).
    """

    sample: int
    caption: str
    observed: np.ndarray
    curves: Mapping[str, np.ndarray]
    true_profile: tuple[np.ndarray, np.ndarray]
    profiles: Mapping[str, tuple[np.ndarray, np.ndarray]]
    errors: Mapping[str, float]


def profile_examples(
    estimates: Mapping[str, xr.Dataset],
    test: xr.Dataset,
    depth_profiles: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    simulate: Callable[[np.ndarray], np.ndarray],
) -> list[ProfileExample]:
    """The fitted test spectra whose first estimate's profile error is lowest, median and
    highest, with every estimate's simulated spectrum and profile.

    Args:
        estimates: label -> dataset with ``estimate`` and ``true`` [sample, param] (the
            network first, then e.g. its refinement); the samples of the last one are used.
        test: raw test spectra (``counts`` [sample, channel]).
        depth_profiles: parameters [n, D] -> (depths [n, P], values [n, P]).
        simulate: parameters [n, D] -> expected counts [n, C].
    """
    samples = next(reversed(estimates.values()))["sample"].values
    chosen = {k: ds.sel(sample=samples) for k, ds in estimates.items()}
    first = next(iter(chosen.values()))
    true_depth, true_values = depth_profiles(first["true"].values)
    profiles = {k: depth_profiles(ds["estimate"].values) for k, ds in chosen.items()}
    errors = {
        k: profile_errors(depth, values, true_depth, true_values)
        for k, (depth, values) in profiles.items()
    }
    first_errors = next(iter(errors.values()))
    picks = example_indices(first_errors)
    whats = {3: ("lowest", "median", "highest"), 2: ("lowest", "highest")}.get(len(picks), ("",))
    out = []
    for k, what in zip(picks, whats, strict=True):
        params = np.stack([ds["estimate"].values[k] for ds in chosen.values()])
        out.append(
            ProfileExample(
                sample=int(samples[k]),
                caption=f"{what} profile error of {next(iter(chosen))}".strip(),
                observed=test["counts"].sel(sample=samples[k]).values.astype(float),
                curves=dict(zip(chosen, np.asarray(simulate(params)), strict=True)),
                true_profile=(true_depth[k], true_values[k]),
                profiles={lab: (d[k], v[k]) for lab, (d, v) in profiles.items()},
                errors={lab: float(e[k]) for lab, e in errors.items()},
            )
        )
    return out


def plot_profile_examples(
    examples: Sequence[ProfileExample],
    axis_values: np.ndarray,
    paths: Sequence[str | Path],
    axis_label: str = "channel",
    depth_label: str = "depth",
    value_label: str = "profile",
    log_y: bool = False,
    title: str = "",
) -> None:
    """One row per example (the paper's Figs. 1 and 4): left, the measured spectrum and the
    simulated spectra of the estimates against the spectrum axis (``axis_values`` [C],
    ``axis_label``; log counts with ``log_y``); right, the true profile and the estimates'."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(examples),
        2,
        figsize=(12.5, 3.3 * len(examples) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.35, 1.0]},
    )
    for (spec, prof), ex in zip(axes, examples, strict=True):
        observed = np.where(ex.observed > 0, ex.observed, np.nan) if log_y else ex.observed
        spec.plot(axis_values, observed, ".", ms=2, color="0.55", label="test spectrum (noisy)")
        prof.plot(*ex.true_profile, color="0.55", lw=3.0, label="true")
        for i, label in enumerate(ex.curves):
            ls = "--" if i == 0 else "-"
            spec.plot(axis_values, ex.curves[label], ls, color=f"C{i}", lw=1.1, label=label)
            prof.plot(
                *ex.profiles[label],
                ls,
                color=f"C{i}",
                lw=1.4,
                label=f"{label} (error {ex.errors[label]:.3g})",
            )
        if log_y:
            spec.set_yscale("log")
            # down to a third of the smallest count, not to where a simulated floor goes
            positive = ex.observed[ex.observed > 0]
            if positive.size:
                spec.set_ylim(bottom=positive.min() / 3)
        spec.set_xlabel(axis_label, fontsize=9)
        spec.set_ylabel("counts per channel", fontsize=9)
        spec.set_title(f"test spectrum {ex.sample}: {ex.caption}", fontsize=9)
        spec.legend(fontsize=7, loc="best")
        prof.set_xlabel(depth_label, fontsize=9)
        prof.set_ylabel(value_label, fontsize=9)
        prof.set_title("profiles (error: rms difference / max |true|)", fontsize=9)
        prof.legend(fontsize=7, loc="best")
        for ax in (spec, prof):
            ax.tick_params(labelsize=8)
            ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, paths)


# ---------------------------------------------------------------------- the workflow's
def accuracy_figures(
    predictions: Mapping[int, xr.Dataset],
    model_size: int,
    technique: Technique,
    outputs: Mapping[str, Sequence[str | Path]],
    name: str = "",
    seed: int = 0,
) -> None:
    """``accuracy_vs_training_size`` and ``predicted_vs_true`` of the network's predictions
    of the test spectra (per training-set size; ``model_size``: the one of Fig. 3), with the
    technique's shown parameters, units and derived quantities.

    Args:
        outputs: figure id -> output paths (PNG and PDF).
    """
    network = predictions[model_size]
    label = str(network.attrs.get("model_label", "network"))
    names = network["param"].values.astype(str).tolist()
    shown, _ = parameter_groups(names, technique.figure_parameters())
    accuracy = accuracy_vs_training_size(predictions, technique.derived_errors)
    derived = [c for c in accuracy.columns if c not in names]
    plot_accuracy_vs_training_size(
        accuracy,
        shown,
        derived,
        outputs["accuracy_vs_training_size"],
        title=f"{name}: {label} accuracy on {network.sizes['sample']} test spectra",
    )
    units = dict(zip(technique.parameter_names, technique.parameter_units, strict=True))
    plot_predicted_vs_true(
        network["mean"].values,
        network["true"].values,
        names,
        [units.get(p, "") for p in names],
        shown,
        outputs["predicted_vs_true"],
        technique.derived_errors,
        title=f"{name}: {label} trained on {model_size} spectra",
        seed=seed,
    )


def profile_figure(
    estimates: Mapping[str, xr.Dataset],
    test: xr.Dataset,
    technique: Technique,
    simulate: Callable[[np.ndarray], np.ndarray],
    paths: Sequence[str | Path],
    name: str = "",
) -> None:
    """``profile_examples``: the fitted test spectra with the lowest, median and highest
    profile error of the first of ``estimates`` (label -> fit result; the network, then its
    refinement), for a technique with depth profiles.

    Raises:
        ValueError: the technique has no depth profiles (``depth_profile_labels`` None).
    """
    if technique.depth_profile_labels is None:
        raise ValueError(
            f"profile_examples: technique {technique.name!r} has no depth profiles "
            "(depth_profile_labels is None)"
        )
    depth_label, value_label = technique.depth_profile_labels
    axis = technique.axis()
    examples = profile_examples(estimates, test, technique.depth_profiles, simulate)
    plot_profile_examples(
        examples,
        test[axis.coordinate].values if axis.coordinate in test.coords else axis.values,
        paths,
        axis_label=axis.label,
        depth_label=depth_label,
        value_label=value_label,
        log_y=bool(technique.preprocessing_defaults.get("log", False)),
        title=f"{name}: test spectra and depth profiles",
    )
