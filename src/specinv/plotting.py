"""Matplotlib figures of spectra (no display needed: the Agg backend is used for files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .fileio import atomic_path, check_output_path


def check_figure_path(path: str | Path, key: str) -> Path:
    """Refuse a figure path whose suffix matplotlib cannot write (or that cannot be written
    as a file) before any work starts.

    Raises:
        ConfigError: naming ``key``, the suffix and the formats that are supported.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    from .config.errors import ConfigError

    path = check_output_path(path, key)
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError(
            f"{key}: cannot write a figure as {path.name!r}; expected a name ending in one of "
            f"{', '.join('.' + f for f in sorted(formats))}"
        )
    return path


def plot_spectrum(
    energy_keV: np.ndarray,
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
    log: bool = False,
    channel_axis: Sequence[float] | None = None,
    measured: np.ndarray | None = None,
    xlabel: str = "detected energy (keV)",
    ylabel: str = "counts per channel",
) -> Path:
    """Save a figure of one or more spectra (counts per channel against energy) to ``path``.

    Args:
        energy_keV: energy of every channel (x axis).
        curves: label -> counts, drawn as lines.
        path: output file (PNG, PDF or SVG from the suffix); written atomically.
        title: figure title.
        log: logarithmic counts axis.
        channel_axis: (offset_keV, gain_keV_per_channel) of a linear calibration: adds a
            channel-number axis on top.
        measured: counts drawn as points (a measured or noisy spectrum).
        xlabel, ylabel: axis labels (``energy_keV`` is then any abscissa).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    if measured is not None:
        ax.plot(energy_keV, measured, ".", ms=2.5, color="0.45", label="counts (with noise)")
    for label, counts in curves.items():
        ax.plot(energy_keV, counts, lw=1.2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
        positive = np.concatenate([np.asarray(c)[np.asarray(c) > 0] for c in curves.values()])
        if positive.size:
            ax.set_ylim(max(positive.min(), 0.1), positive.max() * 2)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlim(energy_keV[0], energy_keV[-1])
    if channel_axis is not None:
        offset, gain = channel_axis
        top = ax.secondary_xaxis(
            "top", functions=(lambda e: (e - offset) / gain, lambda c: offset + gain * c)
        )
        top.set_xlabel("channel")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)
    return path
