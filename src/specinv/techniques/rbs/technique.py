"""RBS as a :class:`~specinv.techniques.base.Technique`: parameters are the areal densities
of the elements of every layer.

Configuration section ``rbs`` (schema: ``rbs.schema.yaml`` beside this file)::

    rbs:
      experiment: {beam: ..., geometry: ..., detector: ..., ...}   # an experiment file
      sample:                                                       # without `sample`
        prior: {law: uniform, low: 50, high: 5000}                  # 1e15 atoms/cm2
        layers:                                                     # surface first
          - {W: null, D: null}                                      # null: sample.prior
          - {W: {law: loguniform, low: 100, high: 5000}, D: null}
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from ...cli import add_simulate_parser, check_output_arguments
from ...config.errors import ConfigError
from ...config.schema import load_schema
from ...physics.rbs import RBSSimulator, Setup
from ...physics.rbs.experiment import ExperimentError, sample_species, setup_from_dict
from ...physics.rbs.simulator import default_device
from ..base import Axis, PartialSimulation, Technique
from ..priors import Prior, prior_box, sample_independent
from .cli import add_analyze_parser, add_design_parser, add_fit_parser

AREAL_DENSITY_UNIT = "1e15 atoms/cm2"


class RBSTechnique(Technique):
    """Rutherford backscattering: parameters are areal densities of elements in layers."""

    name: ClassVar[str] = "rbs"
    task: ClassVar[str] = "regression"
    config_schema: ClassVar[dict] = load_schema(__package__, "rbs.schema.yaml")
    preprocessing_defaults: ClassVar[dict] = {
        "first_channel": 100,
        "merge": 4,
        "log": False,
        "prune": "variance",
        "sigmas": 3.0,
        "savgol": {"window": 7, "polyorder": 2},
    }
    #: the names of Muzakka et al. 2024's tables and figures
    output_names: ClassVar[dict[str, str]] = {
        "runtimes": "table1_runtimes",
        "chi2": "table2-4_chi2_profile",
        "coverage": "table5_coverage",
        "methods": "table6_methods",
        "mre": "fig4-7_mre_vs_training_size",
        "mre_vs_training_size": "fig4-7_mre_vs_training_size",
        "prediction_ratio": "fig8-10_prediction_ratio",
    }

    def __init__(
        self,
        setup: Setup,
        structure: Sequence[Sequence[str]],
        priors: Sequence[Prior] | None = None,
        *,
        experiment: Mapping | None = None,
        device=None,
        dtype=None,
    ):
        self.setup = setup
        self.structure = tuple(tuple(str(n) for n in layer) for layer in structure)
        self.parameter_names = [
            f"layer{i + 1}:{n}" for i, layer in enumerate(self.structure) for n in layer
        ]
        self.parameter_units = [AREAL_DENSITY_UNIT] * len(self.parameter_names)
        default = Prior("uniform", 50.0, 5000.0)
        self.priors = (
            tuple(priors) if priors is not None else (default,) * len(self.parameter_names)
        )
        if len(self.priors) != len(self.parameter_names):
            raise ValueError(
                f"priors: expected {len(self.parameter_names)}, got {len(self.priors)}"
            )
        self._experiment = dict(experiment) if experiment is not None else asdict(setup)
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype or (torch.float32 if self.device.type == "cuda" else torch.float64)

    @cached_property
    def simulator(self) -> RBSSimulator:
        """The batched, differentiable forward model (built on first use)."""
        return RBSSimulator(self.setup, self.structure, device=self.device, dtype=self.dtype)

    # ------------------------------------------------------------------ configuration
    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, device=None, dtype=None) -> RBSTechnique:
        """From the ``rbs`` section: ``experiment`` (the keys of an experiment file without
        ``sample``) and ``sample`` (layers of element -> prior, and the default prior)."""
        experiment = section["experiment"]
        try:
            setup = setup_from_dict(experiment)
        except ExperimentError as exc:
            raise ConfigError(f"experiment: {exc}") from None
        sample = section["sample"]
        default = Prior.parse(
            sample.get("prior"),
            Prior("uniform", 50.0, 5000.0),
            "sample.prior",
            minimum=0.0,
            what="an areal density",
        )
        layers = sample.get("layers")
        if not isinstance(layers, Sequence) or isinstance(layers, str) or not layers:
            raise ConfigError(f"sample.layers: expected a non-empty list of layers, got {layers!r}")
        structure, priors = [], []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Mapping) or not layer:
                raise ConfigError(
                    f"sample.layers[{i}]: expected a mapping of element -> "
                    f"prior (or null for sample.prior), got {layer!r}"
                )
            for name, spec in layer.items():
                try:
                    sample_species(str(name), f"sample.layers[{i}].{name}")
                except ExperimentError as exc:
                    raise ConfigError(str(exc)) from None
                priors.append(
                    Prior.parse(
                        spec,
                        default,
                        f"sample.layers[{i}].{name}",
                        minimum=0.0,
                        what="an areal density",
                    )
                )
            structure.append(tuple(str(n) for n in layer))
        return cls(setup, structure, priors, experiment=experiment, device=device, dtype=dtype)

    def identity(self) -> dict[str, Any]:
        return {
            "experiment": self._experiment,
            "structure": self.structure,
            "priors": [p.to_dict() for p in self.priors],
        }

    def describe(self) -> dict[str, Any]:
        return {
            "technique": self.name,
            "setup": asdict(self.setup),
            "structure": [list(layer) for layer in self.structure],
            "exit_deg": self.setup.exit_angle_deg,
        }

    # ------------------------------------------------------------------ parameters
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return prior_box(self.priors)

    def sample(self, u: np.ndarray) -> np.ndarray:
        return sample_independent(self.priors, u)

    def prior_description(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.priors]

    def parameter_attrs(self) -> dict[str, str]:
        return {"long_name": "areal densities", "units": AREAL_DENSITY_UNIT}

    # ------------------------------------------------------------------ forward model
    @property
    def n_channels(self) -> int:
        return self.setup.detector.channels

    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        return self.simulator.simulate(params)

    def partial_simulation(self) -> PartialSimulation | None:
        """Layers as groups: the parameters of layer l change only the particles scattered
        in layers >= l.  None for a single layer."""
        sim = self.simulator
        if sim.n_layers == 1:
            return None
        group = np.repeat(np.arange(sim.n_layers), [len(layer) for layer in self.structure])
        cost = np.array([sim.reaction_share(li) for li in range(sim.n_layers)])
        return PartialSimulation(
            simulate_from=lambda params, first: sim.simulate(params, first_layer=first),
            parameter_group=group,
            relative_cost=cost,
        )

    def axis(self) -> Axis:
        det = self.setup.detector
        low = det.channel_energy(np.arange(det.channels, dtype=float))
        return Axis(
            "energy_keV",
            low,
            "energy (keV)",
            {"units": "keV", "long_name": "detected energy at the channel's lower edge"},
        )

    @classmethod
    def measured_analysis(cls):
        from .analyze import run_measured_analysis

        return run_measured_analysis

    @classmethod
    def experiment_loader(cls):
        from ...physics.rbs import load_experiment

        return load_experiment

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_cli(cls, subparsers: argparse._SubParsersAction) -> None:
        sim = add_simulate_parser(
            subparsers,
            "the spectrum",
            "Simulate the expected RBS spectrum of the sample and setup in EXPERIMENT (YAML "
            "or JSON, see README) and write a CSV with columns channel, energy_keV (lower "
            "channel edge), counts.",
            "also write a figure (PNG/PDF/SVG)",
            simulate_command,
        )
        sim.add_argument("--log", action="store_true", help="logarithmic counts axis in the plot")
        add_fit_parser(subparsers)
        add_analyze_parser(subparsers)
        add_design_parser(subparsers)


def simulate_command(args: argparse.Namespace) -> int:
    """``specinv rbs simulate``: one experiment file -> CSV (and a figure).  Every option is
    checked before the simulation starts."""
    from ...fileio import write_csv_columns
    from ...physics.rbs import load_experiment, poisson_noise
    from .fitmodel import RBSFitModel

    device = check_output_arguments(args)
    try:
        exp = load_experiment(args.experiment)
    except ExperimentError as exc:
        raise ConfigError(str(exc)) from None
    t0 = time.perf_counter()
    # through the fit model: it averages the spectra of rough layers' thicknesses
    model = RBSFitModel.from_experiment(exp, [], device=device or default_device())
    expected = model.simulate(np.zeros((1, 0)))[0]
    elapsed = time.perf_counter() - t0
    det = exp.setup.detector
    channels = np.arange(det.channels)
    energy = det.channel_energy(channels.astype(float))
    columns = {"channel": channels, "energy_keV": energy}
    if args.noise:
        columns["counts"] = poisson_noise(expected, seed=args.seed).cpu().numpy()
        columns["expected_counts"] = expected.cpu().numpy()
    else:
        columns["counts"] = expected.cpu().numpy()
    write_csv_columns(args.output, columns, ["%d", "%.6f"] + ["%.10g"] * (len(columns) - 2))
    print(
        f"{args.output}: {det.channels} channels, {float(expected.sum()):.6g} counts "
        f"(simulated in {elapsed:.2f} s on {model.simulator.device})"
    )
    if args.plot:
        from ...plotting import plot_spectrum

        layers = " / ".join(
            " ".join(f"{n} {v:g}" for n, v in layer.areal_densities.items()) for layer in exp.layers
        )
        s = exp.setup
        title = (
            f"{s.ion} {s.beam_energy_keV:g} keV, θ = {s.scattering_deg:g}°: {layers} (1e15 at/cm²)"
        )
        curves = {"expected counts": expected.detach().cpu().numpy()}
        channel_axis = (
            None if det.quadratic_keV_per_channel2 else (det.offset_keV, det.gain_keV_per_channel)
        )
        plot_spectrum(
            energy,
            curves,
            args.plot,
            title=title,
            log=args.log,
            channel_axis=channel_axis,
            measured=columns["counts"] if args.noise else None,
        )
        print(f"{args.plot}: figure written")
    return 0
