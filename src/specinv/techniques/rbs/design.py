"""Experiment design for RBS (``specinv rbs design``): how well candidate setups determine a
sample's parameters, before anything is measured or simulated at scale.

A sample structure and its prior come from the ``rbs`` section of a workflow configuration.
Every candidate setup is that section's experiment with some keys changed (the ion, beam
energy, angles, detector channels and gain, fluence, …), and may change the sample's
default prior too (``sample.prior.high``: thinner or thicker layers). For N parameter sets
drawn from the prior — the same uniform numbers for every candidate, so the same draws
where the prior is unchanged and the same quantiles where it is — the Cramér–Rao bounds
of the Poisson counts over the region of interest (the channels from the preprocessing's
first channel on) are computed with exact derivatives
(:func:`specinv.fitting.runner.cramer_rao_bounds`) and summarised per parameter as in the
workflow's information-limit table (:func:`specinv.evaluation.tables.information_table`):
the median relative bound, the median relative error an efficient estimator would reach,
and the share of spectra whose data do not determine the parameter at all.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ...config import ConfigError
from ...evaluation.targets import DETERMINED_EFFICIENT_MRE as DETERMINED_MRE
from ...evaluation.targets import DETERMINED_UNDETERMINED_SHARE as DETERMINED_SHARE
from ...evaluation.targets import determined

#: the name of the candidate that changes nothing: the configuration's own setup
AS_CONFIGURED = "as configured"


def changed_experiment(experiment: Mapping[str, Any], changes: Mapping[str, Any]) -> dict:
    """A copy of ``experiment`` with ``changes`` applied: dotted keys relative to the
    experiment (``beam.energy_keV``, ``geometry.scattering_deg``,
    ``fluence_times_solid_angle_sr``) -> new values.  The result is checked when the
    technique is built; here only a key that would replace a section by a value (or go
    through a value) is refused."""
    out = copy.deepcopy(dict(experiment))
    for key, value in changes.items():
        parts = str(key).split(".")
        if not all(parts):
            raise ConfigError(f"{key!r}: expected a dotted key such as beam.energy_keV")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"{key}: experiment.{where} is {child!r}, not a section")
            node = child
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, Mapping):
            raise ConfigError(
                f"{key}: experiment.{key} is a section; expected a key inside it, e.g. "
                f"{key}.{next(iter(node[parts[-1]]), 'name')}"
            )
        node[parts[-1]] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class SetupInformation:
    """What one candidate setup tells about the prior's parameter sets.

    Attributes:
        name: the candidate's name.
        changes: its changes to the configured experiment (dotted keys).
        information: ``crlb_std`` and ``true`` over ``sample`` and ``param``, the format
            of the workflow's ``fits/information_limit.nc``.
        counts: expected counts in the region of interest, per spectrum.
        channels: channels in the region of interest.
        above_detector: the sample's elements whose surface signal (K·E₀, heaviest
            isotope) lies above the detector's last channel, as "Ta (3712 keV)": their
            signal is cut off the top of the spectrum.
        non_rutherford: the sample's elements from which the beam scatters above the
            estimated onset of non-Rutherford cross sections (:mod:`specinv.physics.rbs.
            nonrutherford`), as "C (~2.0 MeV)"; "onset unknown for 1H" for ions without
            an estimate.
        seconds: wall time of the bounds.
    """

    name: str
    changes: Mapping[str, Any]
    information: xr.Dataset
    counts: np.ndarray
    channels: int
    above_detector: tuple[str, ...] = ()
    non_rutherford: tuple[str, ...] = ()
    seconds: float = field(default=0.0)


#: the prefix of a candidate's keys that change the sample rather than the experiment
SAMPLE_PREFIX = "sample."


def changed_section(section: Mapping[str, Any], changes: Mapping[str, Any]) -> dict:
    """A copy of an ``rbs`` section with a candidate's ``changes`` applied: keys that start
    with ``sample.`` change the sample (``sample.prior.high``: the default prior's upper
    bound), every other key the experiment (:func:`changed_experiment`)."""
    experiment_changes = {}
    sample_changes = {}
    for key, value in changes.items():
        if str(key).startswith(SAMPLE_PREFIX):
            sample_changes[str(key)[len(SAMPLE_PREFIX) :]] = value
        else:
            experiment_changes[key] = value
    out = dict(section)
    out["experiment"] = changed_experiment(section["experiment"], experiment_changes)
    if sample_changes:
        if "layers" in {k.split(".")[0] for k in sample_changes}:
            raise ConfigError(
                "sample.layers: a candidate may change the prior, not the layer structure "
                "(the parameters must be the same in every candidate)"
            )
        try:
            out["sample"] = changed_experiment(section["sample"], sample_changes)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("experiment.", "sample.")) from None
    return out


def prior_uniforms(section: Mapping[str, Any], n_spectra: int, seed: int) -> np.ndarray:
    """``n_spectra`` rows of uniform numbers [N, U] from the seed alone, from which every
    candidate draws its parameter sets (the same numbers for every candidate setup)."""
    from .technique import RBSTechnique

    if n_spectra < 1:
        raise ConfigError(f"spectra: expected >= 1, got {n_spectra}")
    technique = RBSTechnique.from_config(section, device="cpu")
    return np.random.default_rng([seed, 1]).random((n_spectra, technique.n_uniforms))


def setup_information(
    section: Mapping[str, Any],
    name: str,
    changes: Mapping[str, Any],
    uniforms: np.ndarray,
    first_channel: int,
    batch_size: int = 2048,
    progress: bool = True,
) -> SetupInformation:
    """The Cramér–Rao bounds under the section with a candidate's ``changes`` of the
    parameter sets its prior maps ``uniforms`` [N, U] to (:func:`prior_uniforms`), over
    the channels from ``first_channel`` on."""
    import torch

    from ...fitting.runner import cramer_rao_bounds
    from .technique import RBSTechnique

    try:
        candidate = changed_section(section, changes)
        technique = RBSTechnique.from_config(candidate, device="cpu", dtype=torch.float64)
    except ConfigError as exc:
        raise ConfigError(f"candidate {name!r}: {exc}") from None
    params = np.asarray(technique.sample(uniforms), dtype=np.float64).reshape(len(uniforms), -1)
    n_channels = technique.n_channels
    if not 0 <= first_channel < n_channels:
        raise ConfigError(
            f"candidate {name!r}: first channel {first_channel} outside the detector's "
            f"0..{n_channels - 1}"
        )
    roi = np.arange(n_channels) >= first_channel
    t0 = time.perf_counter()
    std, counts = cramer_rao_bounds(
        technique, params, roi, batch_size, progress, desc=f"Cramer-Rao bounds, {name}"
    )
    names = list(technique.parameter_names)
    information = xr.Dataset(
        {
            "crlb_std": (("sample", "param"), std),
            "true": (("sample", "param"), params),
        },
        coords={"sample": np.arange(len(params)), "param": names},
    )
    return SetupInformation(
        name,
        dict(changes),
        information,
        counts,
        int(roi.sum()),
        above_detector(technique),
        beyond_rutherford(technique),
        time.perf_counter() - t0,
    )


def above_detector(technique) -> tuple[str, ...]:
    """The sample's elements whose surface signal K·E₀ (their heaviest isotope, the
    highest energy they send back) lies above the top of the detector's last channel."""
    import math

    from ...physics.rbs.isotopes import ion as ion_isotope
    from ...physics.rbs.isotopes import species
    from ...physics.rbs.kinematics import kinematic_factors

    setup = technique.setup
    top = float(setup.detector.channel_energy(float(setup.detector.channels)))
    projectile = ion_isotope(setup.ion)
    theta = math.radians(setup.scattering_deg)
    out = []
    for element in dict.fromkeys(n for layer in technique.structure for n in layer):
        heaviest = max(species(element).isotopes, key=lambda i: i.mass_u)
        factors = kinematic_factors(projectile.mass_u, heaviest.mass_u, theta)
        if factors and max(factors) * setup.beam_energy_keV > top:
            out.append(f"{element} ({max(factors) * setup.beam_energy_keV:.0f} keV)")
    return tuple(out)


def beyond_rutherford(technique) -> tuple[str, ...]:
    """The sample's elements whose estimated non-Rutherford onset lies below the beam
    energy, with the onset ("C (~2.0 MeV)"); for an ion without an estimate, one entry
    saying so."""
    from ...physics.rbs.nonrutherford import non_rutherford_onset_keV

    setup = technique.setup
    elements = dict.fromkeys(name for layer in technique.structure for name in layer)
    out = []
    for element in elements:
        onset = non_rutherford_onset_keV(setup.ion, element)
        if onset is None:
            return (f"onset unknown for {setup.ion}",)
        if onset < setup.beam_energy_keV:
            out.append(f"{element} (~{onset / 1000:.1f} MeV)")
    return tuple(out)


def evaluate_setups(
    section: Mapping[str, Any],
    candidates: Mapping[str, Mapping[str, Any]],
    n_spectra: int = 200,
    seed: int = 0,
    first_channel: int = 0,
    batch_size: int = 2048,
    progress: bool = True,
) -> dict[str, SetupInformation]:
    """Every candidate (name -> changes) on the same ``n_spectra`` uniform draws, mapped
    through each candidate's prior."""
    if not candidates:
        raise ConfigError("candidates: expected at least one setup")
    uniforms = prior_uniforms(section, n_spectra, seed)
    return {
        name: setup_information(
            section, name, changes, uniforms, first_channel, batch_size, progress
        )
        for name, changes in candidates.items()
    }


def design_table(results: Mapping[str, SetupInformation]) -> pd.DataFrame:
    """Per candidate and parameter (rows ``setup``, ``param``): ``CRLB_relative_std``,
    ``efficient_MRE``, ``undetermined`` and ``determined`` (undetermined in fewer than
    5 % of the spectra and an efficient MRE of at most 10 %)."""
    from ...evaluation.tables import information_table

    parts = []
    for name, result in results.items():
        table = information_table(result.information)
        table["determined"] = determined(table)
        parts.append(pd.concat({name: table}, names=["setup"]))
    return pd.concat(parts)


def setup_summary(
    results: Mapping[str, SetupInformation], table: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per candidate: its changes, the region's channels, the median expected
    counts in the region and per channel, the parameters it determines, its largest
    undetermined share and efficient MRE, the elements whose signal starts above the
    detector's range, those it scatters from beyond their estimated non-Rutherford onset,
    and the wall time of its bounds."""
    table = design_table(results) if table is None else table
    rows = {}
    for name, result in results.items():
        t = table.loc[name]
        rows[name] = {
            "changes": ", ".join(f"{k}={v}" for k, v in result.changes.items()) or "-",
            "channels": result.channels,
            "counts_median": float(np.median(result.counts)),
            "counts_per_channel_median": float(np.median(result.counts) / result.channels),
            "determined": f"{int(t['determined'].sum())}/{len(t)}",
            "worst_undetermined": float(t["undetermined"].max()),
            "worst_efficient_MRE": float(t["efficient_MRE"].max()),
            "above_detector": ", ".join(result.above_detector) or "-",
            "non_Rutherford": ", ".join(result.non_rutherford) or "-",
            "seconds": result.seconds,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "setup"
    return out


def printable_design(table: pd.DataFrame) -> pd.DataFrame:
    """Parameters (rows) by candidates (columns): "efficient MRE % / undetermined %"."""

    def cell(row) -> str:
        mre = row["efficient_MRE"]
        mre_text = "inf" if not np.isfinite(mre) else f"{100 * mre:.2g}"
        return f"{mre_text} / {100 * row['undetermined']:.0f}"

    cells = table.apply(cell, axis=1).unstack("setup")
    order = list(dict.fromkeys(table.index.get_level_values("setup")))
    params = list(dict.fromkeys(table.index.get_level_values("param")))
    return cells.loc[params, order]


def plot_design(
    table: pd.DataFrame, path: str | Path, title: str = "", file_format: str = "png"
) -> None:
    """Efficient MRE (top, log scale; infinite at the top edge) and undetermined share
    (bottom) of every parameter, one marker series per candidate setup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setups = list(dict.fromkeys(table.index.get_level_values("setup")))
    params = list(dict.fromkeys(table.index.get_level_values("param")))
    x = np.arange(len(params))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(7.0, 0.55 * len(params) + 3), 7.5), sharex=True
    )
    finite = table["efficient_MRE"].replace(np.inf, np.nan)
    ceiling = 2.0 * float(np.nanmax(finite)) if finite.notna().any() else 1.0
    width = 0.8 / len(setups)
    for i, name in enumerate(setups):
        t = table.loc[name].reindex(params)
        mre = t["efficient_MRE"].to_numpy(dtype=float)
        shown = np.where(np.isfinite(mre), mre, np.nan)
        (line,) = top.plot(x, 100 * shown, marker="o", lw=1, label=name)
        top.plot(
            x[~np.isfinite(mre)],
            np.full((~np.isfinite(mre)).sum(), 100 * ceiling),
            marker="^",
            ls="none",
            color=line.get_color(),
        )
        offset = (i - (len(setups) - 1) / 2) * width
        bottom.bar(x + offset, 100 * t["undetermined"], width, color=line.get_color())
    top.set_yscale("log")
    top.axhline(100 * DETERMINED_MRE, color="0.5", ls=":", lw=1)
    top.set_ylabel("efficient MRE (%)\n(▲: undetermined in most spectra)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3, which="both")
    bottom.axhline(100 * DETERMINED_SHARE, color="0.5", ls=":", lw=1)
    bottom.set_ylabel("spectra that do not\ndetermine it (%)")
    bottom.set_ylim(0, 100)
    bottom.set_xticks(x, params, rotation=60, ha="right")
    bottom.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format=file_format, dpi=130)
    plt.close(fig)


def parse_candidates(
    document: Mapping[str, Any] | None, vary: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Candidate setups: the configured one, those of a candidates document (``{name:
    {dotted key: value}}``), and one per value of every ``--vary KEY=V1,V2,...`` (values
    read as YAML scalars)."""
    import yaml

    out: dict[str, dict[str, Any]] = {AS_CONFIGURED: {}}
    for name, changes in (document or {}).items():
        if not isinstance(changes, Mapping):
            raise ConfigError(
                f"candidates.{name}: expected a mapping of dotted keys to values, got {changes!r}"
            )
        out[str(name)] = dict(changes)
    for item in vary:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(
                f"--vary {item!r}: expected KEY=V1,V2,... (beam.energy_keV=2000,3000)"
            )
        for text in values.split(","):
            value = yaml.safe_load(text)
            out[f"{key}={text}"] = {key: value}
    return out
