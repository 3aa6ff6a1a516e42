"""``specinv eels`` verbs: ``simulate`` the core-loss spectrum of an experiment file.

An EELS experiment file (YAML or JSON)::

    composition: SrTiO3          # a chemical formula, or {Sr: 1, Ti: 1, O: 3}
    conditions:                  # any of specinv.physics.eels.CONDITIONS; the rest default
      beam_energy_kV: 200
      start_eV: 100
      end_eV: 2100
      seed: 1                    # chemical shifts and fine structure

The spectrum covers 0–3071 eV at 1 eV per channel, zero outside [start_eV, end_eV].
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...cli import add_simulate_parser, check_output_arguments, write_simulated_csv
from ...config.errors import ConfigError
from ...config.files import load_mapping_file
from ...physics.eels.spectrum import CONDITIONS
from .technique import EELSTechnique

#: conditions of an experiment file that leaves them out: a 200 kV probe of 10 mrad, a
#: 20 mrad aperture, a thin sample, mild fine structure, no shifts
DEFAULT_CONDITIONS = {
    "beam_energy_kV": 200.0,
    "convergence_mrad": 10.0,
    "collection_mrad": 20.0,
    "start_eV": 100.0,
    "end_eV": 3071.0,
    "zlp_fwhm_eV": 1.0,
    "plasmon_eV": 15.0,
    "plasmon_fwhm_eV": 5.0,
    "n_plasmons": 3.0,
    "thickness_over_mfp": 0.3,
    "jump_ratio": 1.0,
    "background_exponent": 3.0,
    "log10_background": 5.0,
    "fine_structure_window_eV": 60.0,
    "fine_structure_degree": 15.0,
    "fine_structure_scale": 0.5,
    "atomic_diameter_pm": 150.0,
    "instrumental_shift_eV": 0.0,
    "seed": 0.0,
}


def parse_composition(value: Any, where: str = "composition") -> dict[str, float]:
    """Atoms per formula unit of a chemical formula (``SrTiO3``, via periodictable) or a
    mapping ``{symbol: amount}``; ConfigError naming an unknown or unsupported element."""
    from ...physics.eels.edges import element_symbols

    if isinstance(value, str):
        import periodictable

        try:
            atoms = {str(el): float(n) for el, n in periodictable.formula(value).atoms.items()}
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{where}: not a chemical formula: {value!r} ({exc})") from None
    elif isinstance(value, Mapping):
        atoms = dict(value)
    else:
        raise ConfigError(f"{where}: expected a formula or a mapping, got {value!r}")
    known = element_symbols()
    for symbol, amount in atoms.items():
        if symbol not in known:
            raise ConfigError(
                f"{where}.{symbol}: expected one of the elements Be … Bi, got {symbol!r}"
            )
        if not isinstance(amount, int | float) or amount <= 0:
            raise ConfigError(f"{where}.{symbol}: expected a positive amount, got {amount!r}")
    if not atoms:
        raise ConfigError(f"{where}: expected at least one element, got {value!r}")
    return {k: float(v) for k, v in atoms.items()}


def load_eels_experiment(path: str | Path) -> tuple[EELSTechnique, np.ndarray]:
    """The technique and the parameter vector [D] of an EELS experiment file.

    Raises:
        ConfigError: naming the file and the key.
    """
    from ...config.schema import validate

    data = dict(load_mapping_file(path, "EELS experiment file (YAML or JSON)"))
    try:
        unknown = sorted(set(data) - {"composition", "conditions"})
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} (expected composition, conditions)"
            )
        if "composition" not in data:
            raise ConfigError("composition: is required but missing")
        composition = parse_composition(data["composition"])
        conditions = dict(data.get("conditions") or {})
        names = [n for n, _ in CONDITIONS]
        for key, value in conditions.items():
            if key not in names:
                raise ConfigError(f"conditions.{key}: unknown (expected one of {', '.join(names)})")
            if not isinstance(value, int | float):
                raise ConfigError(f"conditions.{key}: expected a number, got {value!r}")
        values = {**DEFAULT_CONDITIONS, **conditions}
        if not 0 <= values["start_eV"] < values["end_eV"] <= 3071:
            raise ConfigError(
                f"conditions: expected 0 <= start_eV < end_eV <= 3071, got start_eV "
                f"{values['start_eV']}, end_eV {values['end_eV']}"
            )
        section: dict = {}
        validate(section, EELSTechnique.config_schema)
        technique = EELSTechnique(section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    params = np.zeros(len(technique.parameter_names))
    for symbol, amount in composition.items():
        params[technique.parameter_names.index(f"amount_{symbol}")] = amount
    for name, value in values.items():
        params[technique.parameter_names.index(name)] = value
    return technique, params


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    add_simulate_parser(
        subparsers,
        "the core-loss spectrum",
        "Simulate the expected core-loss EELS spectrum of the composition and conditions in "
        "EXPERIMENT (YAML or JSON; see specinv.techniques.eels.cli) and write a CSV with "
        "columns energy_loss_eV, counts.",
        "also write a figure (PNG/PDF/SVG, log scale, edges marked)",
        simulate_command,
    )
    maps = subparsers.add_parser(
        "map",
        help="element maps of a simulated spectrum image by a trained network",
        description="Simulate the spectrum image of a layered sample (by default the "
        "paper's LaMnO3/BaTiO3/SrTiO3 superlattice over 400-1000 eV), predict every "
        "pixel's elements with the network of a workflow run, and draw the maps of the "
        "elements detected in at least 1 %% of the pixels (threshold: the run's balanced "
        "one, from its validation predictions).",
    )
    maps.add_argument("--network", required=True, type=Path, help="results/<name> of a run")
    maps.add_argument("--size", type=int, help="training-set size (default: the largest)")
    maps.add_argument("-o", "--output", type=Path, required=True, help="figure (PNG/PDF/SVG)")
    maps.add_argument("--csv", type=Path, help="also write every pixel's probabilities")
    maps.add_argument(
        "--layers",
        default=",".join(f"{f}:{n}" for f, n in _superlattice()),
        help="formula:rows of every layer from the top (default: %(default)s)",
    )
    maps.add_argument("--columns", type=int, default=6, help="pixels along the layers")
    maps.add_argument("--seed", type=int, default=0, help="seed of the noise and structures")
    maps.set_defaults(func=map_command)
    ident = subparsers.add_parser(
        "identify",
        help="the elements of a measured spectrum, by a trained network",
        description="Read a measured core-loss spectrum (two columns: energy loss in eV, "
        "counts), put it on the 0-3071 eV channels (cubic spline, zero outside its range, "
        "as the paper), predict the probability of every element with the network of a "
        "workflow run and report those above the threshold (default: the run's balanced "
        "one); with --quantify also their atomic fractions (model-based fit; needs the "
        "beam energy and the angles).",
    )
    ident.add_argument("spectrum", type=Path, help="two-column text file (eV, counts)")
    ident.add_argument("--network", required=True, type=Path, help="results/<name> of a run")
    ident.add_argument("--size", type=int, help="training-set size (default: the largest)")
    ident.add_argument("--threshold", type=float, help="probability threshold (0-1)")
    ident.add_argument("-o", "--output", type=Path, help="CSV of every element's probability")
    ident.add_argument("--plot", type=Path, help="figure of the spectrum and the elements")
    ident.add_argument("--quantify", action="store_true", help="also the atomic fractions")
    ident.add_argument("--beam-kv", type=float, help="acceleration voltage (kV)")
    ident.add_argument("--convergence-mrad", type=float, help="convergence semi-angle (mrad)")
    ident.add_argument("--collection-mrad", type=float, help="collection semi-angle (mrad)")
    ident.set_defaults(func=identify_command)


def _superlattice():
    from .mapping import SUPERLATTICE

    return SUPERLATTICE


def parse_layers(text: str) -> list[tuple[str, int]]:
    """``"SrTiO3:4,BaTiO3:4"`` -> [("SrTiO3", 4), ("BaTiO3", 4)] (ConfigError naming
    ``--layers``)."""
    layers = []
    for item in text.split(","):
        formula, _, rows = item.strip().partition(":")
        if not formula or not rows.strip().isdigit() or int(rows) < 1:
            raise ConfigError(f"--layers: expected formula:rows, e.g. SrTiO3:4, got {item!r}")
        parse_composition(formula, "--layers")
        layers.append((formula, int(rows)))
    return layers


def map_command(args: argparse.Namespace) -> int:
    """``specinv eels map``: simulate, predict, keep the detected elements, draw."""
    from ...evaluation.classification import resolve_threshold
    from ...fileio import check_output_path, write_csv_columns
    from ...plotting import check_figure_path
    from ...training.runs import load_network_run, predict_spectra
    from .mapping import element_maps, layered_spectrum_image

    check_figure_path(args.output, "-o/--output")
    if args.csv:
        check_output_path(args.csv, "--csv")
    layers = parse_layers(args.layers)
    if args.columns < 1:
        raise ConfigError(f"--columns: expected >= 1, got {args.columns}")
    run = load_network_run(args.network, "eels", args.size)
    section = {k: v for k, v in run.forward_model.items() if k not in ("technique", "parameters")}
    technique = EELSTechnique(section)
    image = layered_spectrum_image(technique, layers, args.columns, seed=args.seed)
    rows, columns, channels = image.counts.shape
    t0 = time.perf_counter()
    predicted = predict_spectra(
        run, image.counts.reshape(-1, channels), labels=technique.target_names
    )
    elapsed = time.perf_counter() - t0
    validation = Path(args.network) / "predictions" / f"n{run.size}" / "validation.nc"
    if validation.is_file():
        from ...data import read_dataset

        threshold = resolve_threshold("balanced", read_dataset(validation))
    else:
        threshold = 0.5
    probability = predicted["probability"].values.reshape(rows, columns, -1)
    maps = element_maps(probability, technique.target_names, threshold)
    print(
        f"{rows * columns} spectra predicted in {elapsed:.2f} s; threshold {threshold:g}; "
        f"detected: {', '.join(maps.elements) or 'none'}"
    )
    plot_element_maps(image, maps, args.output, f"{Path(args.network).name} n={run.size}")
    print(f"{args.output}: figure written")
    if args.csv:
        r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
        data = {"row": r.ravel(), "column": c.ravel(), "layer": image.row_layer[r.ravel()]}
        for k, el in enumerate(maps.elements):
            data[el] = maps.probability[..., k].ravel()
        write_csv_columns(args.csv, data, ["%d", "%d", "%d"] + ["%.4f"] * len(maps.elements))
        print(f"{args.csv}: {rows * columns} pixels written")
    return 0


def identify_command(args: argparse.Namespace) -> int:
    """``specinv eels identify``: a measured spectrum -> elements (and fractions)."""
    from ...data import read_dataset
    from ...evaluation.classification import resolve_threshold
    from ...fileio import check_output_path
    from ...plotting import check_figure_path
    from ...training.runs import load_network_run, predict_spectra
    from .measured import on_channels, read_spectrum
    from .quantify import elements_with_edges, quantify

    if args.output:
        check_output_path(args.output, "-o/--output")
    if args.plot:
        check_figure_path(args.plot, "--plot")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ConfigError(f"--threshold: expected a probability in (0, 1), got {args.threshold}")
    angles = (args.beam_kv, args.convergence_mrad, args.collection_mrad)
    if args.quantify:
        for option, value in zip(
            ("--beam-kv", "--convergence-mrad", "--collection-mrad"), angles, strict=True
        ):
            if value is None or value <= 0:
                raise ConfigError(f"{option}: --quantify needs a positive value, got {value}")
    spectrum = read_spectrum(args.spectrum)
    counts = on_channels(spectrum)
    run = load_network_run(args.network, "eels", args.size)
    section = {k: v for k, v in run.forward_model.items() if k not in ("technique", "parameters")}
    technique = EELSTechnique(section)
    probability = predict_spectra(run, counts[None], labels=technique.target_names)[
        "probability"
    ].values[0]
    if args.threshold is not None:
        threshold = args.threshold
    else:
        validation = Path(args.network) / "predictions" / f"n{run.size}" / "validation.nc"
        threshold = (
            resolve_threshold("balanced", read_dataset(validation)) if validation.is_file() else 0.5
        )
    names = technique.target_names
    found = [names[k] for k in np.argsort(probability)[::-1] if probability[k] > threshold]
    listed = ", ".join(f"{el} {probability[names.index(el)]:.2f}" for el in found)
    print(
        f"{args.spectrum}: {listed or 'no element'} above {threshold:g} "
        f"(network {Path(args.network).name}, n={run.size})"
    )
    fractions = {}
    in_range = elements_with_edges(found, counts, args.beam_kv or 200.0)
    if args.quantify and set(found) - set(in_range):
        print(
            "not quantified (no edge in the recorded range): "
            + ", ".join(el for el in found if el not in in_range)
        )
    if args.quantify and in_range:
        result = quantify(
            counts,
            in_range,
            beam_energy_kV=args.beam_kv,
            convergence_mrad=args.convergence_mrad,
            collection_mrad=args.collection_mrad,
        )
        fractions = dict(zip(in_range, result.concentrations, strict=True))
        print(
            "atomic fractions: "
            + ", ".join(f"{el} {100 * x:.1f} %" for el, x in fractions.items())
            + f" (reduced chi2 {result.chi2_reduced:.3g})"
        )
    if args.output:
        from ...fileio import atomic_path

        with atomic_path(args.output) as tmp, open(tmp, "w") as f:
            f.write("element,probability,present,atomic_fraction\n")
            for el, p in zip(names, probability, strict=True):
                frac = fractions.get(el)
                f.write(
                    f"{el},{p:.5f},{int(p > threshold)},{'' if frac is None else f'{frac:.5f}'}\n"
                )
        print(f"{args.output}: {len(names)} elements written")
    if args.plot:
        _plot_identified(counts, found, probability, names, threshold, args.plot, args.spectrum)
        print(f"{args.plot}: figure written")
    return 0


def _plot_identified(counts, found, probability, names, threshold, path, source) -> None:
    """The spectrum on its channels with the onsets of the found elements' edge sets."""
    from ...evaluation.figures import _pyplot, _save
    from ...physics.eels.edges import dataset_edge_sets

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    inside = np.flatnonzero(counts > 0)
    e = np.arange(counts.size)
    ax.plot(e[inside[0] : inside[-1] + 1], counts[inside[0] : inside[-1] + 1], lw=0.9)
    _mark_onsets(
        ax,
        {
            s.onset_eV: f"{s.label} {probability[names.index(s.symbol)]:.2f}"
            for s in dataset_edge_sets()
            if s.symbol in found and inside[0] <= s.onset_eV <= inside[-1]
        },
    )
    ax.set_title(f"{Path(source).name}: elements above {threshold:g}", fontsize=9)
    _save(fig, [path])


def plot_element_maps(image, maps, path, title: str) -> None:
    """The summed counts and every detected element's probability, one panel each, the
    layers named along the rows."""
    from ...evaluation.figures import _pyplot, _save

    plt = _pyplot()
    n = 1 + len(maps.elements)
    rows, columns = image.counts.shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(1.1 * n + 1.5, 0.28 * rows + 1.6), sharey=True)
    axes = np.atleast_1d(axes)
    axes[0].imshow(image.counts.sum(-1), cmap="gray", aspect="auto")
    axes[0].set_title("counts", fontsize=8)
    ticks = [r for r, layer in enumerate(image.row_layer) if layer >= 0]
    axes[0].set_yticks(ticks, [image.layers[image.row_layer[r]][0] for r in ticks], fontsize=6)
    for ax, k in zip(axes[1:], range(len(maps.elements)), strict=True):
        shown = ax.imshow(maps.probability[..., k], vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(maps.elements[k], fontsize=9)
    for ax in axes:
        ax.set_xticks([])
    if len(axes) > 1:
        fig.colorbar(shown, ax=list(axes), fraction=0.04, label="probability")
    fig.suptitle(f"{title}: threshold {maps.threshold:g}", fontsize=9)
    _save(fig, [path])


def simulate_command(args: argparse.Namespace) -> int:
    """``specinv eels simulate``: one experiment file -> CSV (and a figure)."""

    check_output_arguments(args)
    technique, params = load_eels_experiment(args.experiment)
    t0 = time.perf_counter()
    expected = technique.simulate(params).numpy()
    elapsed = time.perf_counter() - t0
    columns = write_simulated_csv(args, technique, expected, "%.0f")
    labels = [
        s for s, v in zip(technique.target_names, technique.targets(params)[0], strict=True) if v
    ]
    print(
        f"{args.output}: {len(expected)} channels, elements with an edge in range: "
        f"{', '.join(labels) or 'none'} (simulated in {elapsed:.2f} s)"
    )
    if args.plot:
        plot_eels_spectrum(technique, params, columns["counts"], args.plot, Path(args.experiment))
        print(f"{args.plot}: figure written")
    return 0


def _mark_onsets(ax, labels: dict[float, str]) -> None:
    """A dashed line and a label at every onset (eV -> label); the axes' labels."""
    for onset, text in labels.items():
        ax.axvline(onset, color="0.55", ls="--", lw=0.7)
        ax.annotate(
            text,
            (onset, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -12),
            textcoords="offset points",
            fontsize=8,
            rotation=90,
            va="top",
        )
    ax.set_xlabel("energy loss (eV)")
    ax.set_ylabel("counts per eV")


def plot_eels_spectrum(technique, params, counts, path, experiment: Path) -> None:
    """The spectrum (log scale) over its range, each visible edge set marked at its onset."""
    from ...evaluation.figures import _pyplot, _save

    plt = _pyplot()
    sim = technique.simulator
    col = sim.column
    start, end = int(params[col["start_eV"]]), int(params[col["end_eV"]])
    energy = technique.axis().values
    inside = slice(start, end + 1)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.semilogy(energy[inside], np.maximum(counts[inside], 0.5), lw=0.9)
    visible = sim.visible_sets(params[None])[0]
    _mark_onsets(
        ax, {s.onset_eV: s.label for s, shown in zip(sim.sets, visible, strict=True) if shown}
    )
    ax.set_title(
        f"{experiment.stem}: {params[col['beam_energy_kV']]:g} kV, α = "
        f"{params[col['convergence_mrad']]:g} mrad, β = {params[col['collection_mrad']]:g} mrad, "
        f"t/λ = {params[col['thickness_over_mfp']]:g}",
        fontsize=9,
    )
    _save(fig, [path])
