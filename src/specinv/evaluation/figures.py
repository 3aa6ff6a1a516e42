"""The paper's figures (matplotlib, Agg backend; PNG or PDF from the file suffix)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from ..fileio import atomic_path
from .metrics import median_relative_error


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, paths: Sequence[str | Path]) -> None:
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    _pyplot().close(fig)


def plot_mre_vs_training_size(
    mre: pd.DataFrame, paths: Sequence[str | Path], title: str = "", per_panel: int = 15
) -> None:
    """MRE of every parameter against the training-set size (the paper's Figs. 4–7).

    With more than ``per_panel`` parameters, two panels show the ``per_panel`` best and
    worst predicted parameters (by MRE at the largest size), as Figs. 6 and 7 do.
    """
    plt = _pyplot()
    order = mre.iloc[-1].sort_values().index.tolist()
    groups = (
        [("", order)]
        if len(order) <= per_panel
        else [(f"{per_panel} best", order[:per_panel]), (f"{per_panel} worst", order[-per_panel:])]
    )
    fig, axes = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 4.4), squeeze=False)
    sizes = mre.index.to_numpy()
    for ax, (label, names) in zip(axes[0], groups, strict=True):
        cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
        for i, name in enumerate(names):
            ax.plot(
                sizes, 100 * mre[name].to_numpy(), "o-", color=cmap(i % cmap.N), label=name, ms=4
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training spectra")
        ax.set_ylabel("median relative error (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{title} {label}".strip())
        ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
    _save(fig, paths)


def plot_prediction_ratio(
    predictions: xr.Dataset,
    paths: Sequence[str | Path],
    n_samples: int = 150,
    seed: int = 0,
    max_panels: int = 16,
    title: str = "",
) -> None:
    """Prediction-to-target ratio ŷ/y₀ with error bars Δy/y₀ for ``n_samples`` random test
    spectra, sorted by target, one panel per parameter (the paper's Figs. 8–10).  With more
    than ``max_panels`` parameters, the best and worst predicted half each."""
    plt = _pyplot()
    est, std, true = (predictions[k].values for k in ("mean", "std", "true"))
    names = predictions["param"].values.astype(str)
    mre = median_relative_error(est, true)
    order = np.argsort(mre)
    chosen = (
        order
        if len(order) <= max_panels
        else np.concatenate([order[: max_panels // 2], order[-(max_panels // 2) :]])
    )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(true), size=min(n_samples, len(true)), replace=False)
    ncol = min(4, len(chosen))
    nrow = -(-len(chosen) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), squeeze=False)
    for ax, j in zip(axes.flat, chosen, strict=False):
        y0 = true[pick, j]
        srt = np.argsort(y0)
        ratio = est[pick, j][srt] / y0[srt]
        x = np.arange(len(srt))
        ax.errorbar(
            x,
            ratio,
            yerr=std[pick, j][srt] / y0[srt],
            fmt="o",
            ms=2,
            lw=0.6,
            elinewidth=0.6,
            capsize=0,
            color="C0",
        )
        ax.axhline(1.0, color="k", lw=0.8)
        # the axis shows the bulk; the few outliers are drawn as triangles on its edge
        half = _ratio_half_range(ratio)
        ax.set_ylim(1.0 - half, 1.0 + half)
        for side, marker in ((1.0, "^"), (-1.0, "v")):
            out = side * (ratio - 1.0) > half
            if out.any():
                ax.plot(
                    x[out],
                    np.full(out.sum(), 1.0 + side * 0.97 * half),
                    marker,
                    ms=4,
                    color="C3",
                    clip_on=False,
                )
        n_out = int(np.sum(np.abs(ratio - 1.0) > half))
        beyond = f", {n_out} off the axis" if n_out else ""
        ax.set_title(f"{names[j]} (MRE {100 * mre[j]:.2g} %{beyond})", fontsize=8)
        ax.set_xlabel("test spectra, by increasing target", fontsize=7)
        ax.set_ylabel("prediction / target", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, paths)


def _ratio_half_range(ratio: np.ndarray) -> float:
    """Half-height of the ratio axis around 1: 1.5 × the 95th percentile of |ratio − 1| (at
    least 2 %), so the bulk fills the panel whatever a few outliers do."""
    dev = np.abs(ratio[np.isfinite(ratio)] - 1.0)
    return max(0.02, 1.5 * float(np.quantile(dev, 0.95))) if dev.size else 1.0


def plot_chi2_distributions(
    fits: Mapping[str, xr.Dataset],
    paths: Sequence[str | Path],
    alpha: float = 0.05,
    title: str = "",
) -> None:
    """Cumulative distribution of χ² of each method against the ideal χ²_ν (ν = RoI
    channels), with the acceptance threshold: a method's curve at the threshold is its
    acceptance rate."""
    plt = _pyplot()
    dof = int(next(iter(fits.values())).attrs["dof"])
    ideal = stats.chi2(dof)
    values = {k: np.sort(np.asarray(f["chi2"].values, dtype=float)) for k, f in fits.items()}
    lo = min(min(float(v[0]) for v in values.values()), ideal.ppf(1e-4))
    hi = max(max(float(v[-1]) for v in values.values()), ideal.ppf(1 - 1e-4))
    threshold = ideal.ppf(1 - alpha)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i, (label, v) in enumerate(values.items()):
        accepted = np.mean(v <= threshold)
        ax.step(
            v,
            np.arange(1, len(v) + 1) / len(v),
            where="post",
            color=f"C{i}",
            lw=1.4,
            label=f"{label}: median {np.median(v):.4g}, accepted {100 * accepted:.0f} %",
        )
    grid = np.geomspace(max(lo, 1e-3), hi, 400)
    ax.plot(grid, ideal.cdf(grid), "k--", lw=1, label=f"ideal $\\chi^2_{{{dof}}}$")
    ax.axvline(
        threshold,
        color="k",
        lw=0.8,
        ls=":",
        label=f"acceptance threshold ({100 * (1 - alpha):.0f} % of $\\chi^2_{{{dof}}}$)",
    )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(r"$\chi^2$ over the region of interest")
    ax.set_ylabel("fraction of test spectra with smaller $\\chi^2$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    ax.set_title(title)
    _save(fig, paths)


def plot_example_fits(
    axis_values: np.ndarray,
    observed: np.ndarray,
    curves: Mapping[str, np.ndarray],
    roi: np.ndarray,
    paths: Sequence[str | Path],
    title: str = "",
    axis_label: str = "channel",
) -> None:
    """One test spectrum (points) with the simulated spectra of each method's estimate,
    against the spectrum axis (``axis_values`` [C], labelled ``axis_label``)."""
    plt = _pyplot()
    fig, (ax, res) = plt.subplots(
        2, 1, figsize=(8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    ax.plot(axis_values, observed, ".", ms=2, color="0.4", label="test spectrum (noisy)")
    w = 1.0 / np.sqrt(observed + 1.0)
    for i, (label, sim) in enumerate(curves.items()):
        chi2 = float((((observed - sim) * w) ** 2)[roi].sum())
        ax.plot(axis_values, sim, color=f"C{i}", lw=1, label=f"{label} ($\\chi^2$ = {chi2:.4g})")
        res.plot(axis_values, np.where(roi, (observed - sim) * w, np.nan), color=f"C{i}", lw=0.6)
    ax.set_ylabel("counts per channel")
    ax.legend(fontsize=8)
    ax.set_title(title)
    res.axhline(0, color="k", lw=0.6)
    res.set_ylabel(r"$(x - s)/\sqrt{x + 1}$")
    res.set_xlabel(axis_label)
    _save(fig, paths)


def paper_figures(
    predictions: Mapping[int, xr.Dataset],
    mre: pd.DataFrame,
    fits: Mapping[str, xr.Dataset],
    test: xr.Dataset,
    roi: np.ndarray,
    simulate,
    model_size: int,
    outputs: Mapping[str, Sequence[str | Path]],
    name: str = "",
    alpha: float = 0.05,
    ratio_samples: int = 150,
    seed: int = 0,
    axis: tuple[str, str] | None = None,
) -> None:
    label = str(predictions[model_size].attrs.get("model_label", "MDN"))
    """Every figure of the evaluation of a regression technique.

    Args:
        predictions: the network's predictions per training-set size; mre: :func:`mre_table`.
        fits: fit results by display label (the MDN's back-simulation included).
        test: raw test spectra (``counts`` and the technique's channel coordinate).
        roi: region-of-interest mask of the channels.
        simulate: parameters [K, D] (array) -> expected counts [K, C] (array); it receives
            the estimates as they are (clip them to the forward model's domain there).
        axis: (coordinate, axis label) of the spectrum axis (the technique's
            :meth:`~specinv.techniques.Technique.axis`); default: the first coordinate along
            the channels, labelled with its units.
        outputs: figure id (mre_vs_training_size, prediction_ratio, chi2_distributions,
            example_fits) -> output paths (PNG and PDF).
    """
    plot_mre_vs_training_size(mre, outputs["mre_vs_training_size"], title=f"{name}: {label}")
    plot_prediction_ratio(
        predictions[model_size],
        outputs["prediction_ratio"],
        n_samples=ratio_samples,
        seed=seed,
        title=f"{name}: {label} trained on {model_size} spectra",
    )
    plot_chi2_distributions(
        fits,
        outputs["chi2_distributions"],
        alpha=alpha,
        title=f"{name}: goodness of fit on the test spectra",
    )
    # the example: the fitted spectrum where the MDN's χ² is at its median
    first = next(iter(fits.values()))
    chi2 = first["chi2"].values
    k = int(np.argsort(chi2)[len(chi2) // 2])
    sample = first["sample"].values[k]
    observed = test["counts"].sel(sample=sample).values.astype(float)
    estimates = np.stack([f["estimate"].sel(sample=sample).values for f in fits.values()])
    curves = dict(zip(fits, np.asarray(simulate(estimates)), strict=True))
    values, axis_label = (test[axis[0]].values, axis[1]) if axis else channel_axis(test)
    plot_example_fits(
        values,
        observed,
        curves,
        roi,
        outputs["example_fits"],
        title=f"{name}: test spectrum {sample}",
        axis_label=axis_label,
    )


def channel_axis(ds: xr.Dataset, dim: str = "channel") -> tuple[np.ndarray, str]:
    """(values, label) of the first physical coordinate along ``dim``, labelled with its
    units, or the channel numbers."""
    for c in ds.coords:
        if ds[c].dims == (dim,) and c != dim:
            units = ds[c].attrs.get("units")
            return ds[c].values, f"{c} ({units})" if units else str(c)
    return np.arange(ds.sizes[dim]), dim
