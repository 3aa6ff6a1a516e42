"""The seam between a technique and everything generic.

A technique is everything that knows what a spectrum of its kind means: its configuration
section and the schema fragment that validates it, its parameters (names, units, bounds of
any sign), sampling from its prior, the forward model, the targets a network learns, the
noise model, the preprocessing defaults, the spectrum axis and its CLI verbs.  Data
generation, preprocessing, training, evaluation, fitting and the workflow see only this
interface; the registry in :mod:`specinv.techniques` maps ``technique: <name>`` to a class.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..config.errors import ConfigError

#: counts are stored as int32: expected counts must stay well below 2**31
_INT32_LIMIT = 2.0e9

#: The tasks a technique's network can solve; they decide which evaluation the workflow runs.
TASKS = ("regression", "multilabel")


@dataclass(frozen=True)
class PartialSimulation:
    """How a forward model simulates only the part of a spectrum that some parameters change.

    The spectrum is a sum of contributions of ordered groups 0 … G−1, and a parameter of
    group g changes only the contributions of groups ≥ g.  In RBS the groups are the layers:
    a layer's composition changes the scattering in it and, through the energy loss, below
    it, but not above it.  Finite-difference derivatives with respect to a parameter of a
    deep group then need only the deep part of the spectrum.

    Attributes:
        simulate_from: ``simulate_from(params [K, D], g)`` -> the contributions of groups
            ≥ g [K, channels]; ``g = 0`` is the whole spectrum.
        parameter_group: group of every parameter [D] (integers in 0 … G−1).
        relative_cost: [G] cost of ``simulate_from(·, g)`` relative to the whole spectrum
            (1 for g = 0; 0 where groups ≥ g contribute nothing); decides where a partial
            simulation pays off and how it counts in the simulation budget.
    """

    simulate_from: Callable[[torch.Tensor, int], torch.Tensor]
    parameter_group: np.ndarray
    relative_cost: np.ndarray


@dataclass(frozen=True)
class Axis:
    """The spectrum axis of a technique, for datasets and figures.

    Attributes:
        coordinate: name of the physical coordinate along the channels (``energy_keV``).
        values: its value at every channel [C].
        label: axis label with units (``energy (keV)``).
        attrs: NetCDF attributes of the coordinate (``units``, ``long_name``).
    """

    coordinate: str
    values: np.ndarray
    label: str
    attrs: Mapping[str, str]


class Technique(abc.ABC):
    """A forward model of one kind of spectrum and everything that goes with it.

    Class attributes:
        name: registry name ("rbs"); also the key of its configuration section.
        task: "regression" (the network estimates the parameters) or "multilabel" (it
            predicts which of ``target_names`` are present).
        config_schema: JSON-schema fragment of the technique's section (descriptions and
            defaults; the one source of its defaults).
        preprocessing_defaults: the technique's values of the ``preprocessing`` keys a
            configuration leaves out (see :class:`~specinv.data.PreprocessSettings`).
        noise_models: values of ``data.noise`` the technique supports besides ``none``.
        fit_statistic: what the fits minimise (``poisson`` or ``log10``); every fit result
            also reports the Poisson χ², the test of a fit on counting data.

    Instance attributes set by the constructor: ``parameter_names``, ``parameter_units``,
    ``device`` and ``dtype`` (of the tensors :meth:`simulate` takes).
    """

    name: ClassVar[str]
    task: ClassVar[str] = "regression"
    config_schema: ClassVar[dict] = {"type": "object"}
    preprocessing_defaults: ClassVar[dict] = {}
    noise_models: ClassVar[tuple[str, ...]] = ("poisson",)
    #: file names (without suffix) of the workflow's tables and figures by their id, where
    #: a technique's paper names them (RBS: "table6_methods" for "methods"); others keep
    #: the id
    output_names: ClassVar[dict[str, str]] = {}
    channel_dim: ClassVar[str] = "channel"
    #: what fits of the technique's spectra minimise: ``poisson`` (χ² of counts) or
    #: ``log10`` (squared differences of log intensities), see
    #: :class:`~specinv.fitting.problem.SpectrumFitProblem`
    fit_statistic: ClassVar[str] = "poisson"
    #: (depth axis label, profile axis label) of the technique's depth profiles
    #: (:meth:`depth_profiles`), e.g. ``("depth below the surface (nm)", "strain (%)")``;
    #: None (the default): the technique has none, and the workflow draws no profile figure
    depth_profile_labels: ClassVar[tuple[str, str] | None] = None

    parameter_names: list[str]
    parameter_units: list[str]
    device: torch.device
    dtype: torch.dtype

    # ------------------------------------------------------------------ construction
    @classmethod
    @abc.abstractmethod
    def from_config(cls, section: Mapping[str, Any], *, device=None, dtype=None) -> Technique:
        """The technique of a configuration section, already validated against
        :attr:`config_schema` (defaults filled in).  Raises
        :class:`~specinv.config.ConfigError` naming the key (relative to the section) for
        what a schema cannot check."""

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything the simulated data depend on, JSON-ready (hashed into ``data_hash``)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild the forward model (stored with datasets)."""

    # ------------------------------------------------------------------ parameters
    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @abc.abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior box (low [D], high [D]); any sign.  Fits stay inside it."""

    @property
    def n_uniforms(self) -> int:
        """Uniform numbers :meth:`sample` takes per spectrum (default: one per parameter)."""
        return self.n_parameters

    @abc.abstractmethod
    def sample(self, u: np.ndarray) -> np.ndarray:
        """Parameters [n, D] from uniform [0, 1) numbers ``u`` [n, n_uniforms] (row j of ``u``
        gives spectrum j: a structured prior, e.g. a random subset of elements, uses
        several numbers per parameter)."""

    def prior_description(self) -> Any:
        """The prior, JSON-ready, stored with datasets (None: not stored)."""
        return None

    def parameter_attrs(self) -> dict[str, str]:
        """NetCDF attributes of the ``params`` variable."""
        units = set(self.parameter_units)
        return {
            "long_name": "parameters of the forward model",
            "units": units.pop() if len(units) == 1 else "see param_units",
        }

    # ------------------------------------------------------------------ targets
    @property
    def target_names(self) -> list[str]:
        """What the network learns: the parameters (regression) or labels (multilabel)."""
        return list(self.parameter_names)

    def targets(self, params: np.ndarray) -> np.ndarray:
        """Targets [n, T] of parameters [n, D]: the parameters themselves for regression;
        0/1 labels for a multi-label technique (which must override this)."""
        return np.asarray(params, dtype=np.float64)

    def derived_errors(self, estimate: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
        """Relative errors [n] of quantities derived from all parameters (estimates and
        true values [n, D]) that the evaluation's accuracy table reports beside the
        parameters (XRD: the maximum strain and the strain profile).  Default: none."""
        return {}

    def figure_parameters(self) -> list[str]:
        """The parameters the evaluation's figures show one by one (accuracy against the
        training size, predicted against true values); the others are summarised (XRD: the
        scalars, not the ten strain weights).  Default: every parameter."""
        return list(self.parameter_names)

    def depth_profiles(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Depth profiles of parameters [n, D]: (depths [n, P] in the physical units of
        ``depth_profile_labels[0]``, profile values [n, P] in those of
        ``depth_profile_labels[1]``), point j of every profile at the same place relative
        to its own extent (XRD: the same fraction of its damaged thickness).  None (the
        default) for a technique without depth profiles (``depth_profile_labels`` None)."""
        return None

    # ------------------------------------------------------------------ forward model
    @property
    @abc.abstractmethod
    def n_channels(self) -> int:
        """Length of a spectrum."""

    @abc.abstractmethod
    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        """Expected (noise-free) spectra [B, channels] of parameters [B, D] (differentiable
        where the technique allows)."""

    def partial_simulation(self) -> PartialSimulation | None:
        """The technique's :class:`PartialSimulation`, or None when every parameter can
        change the whole spectrum (the default)."""
        return None

    def add_noise(
        self, expected: np.ndarray, rng: np.random.Generator, model: str = "poisson"
    ) -> np.ndarray:
        """One noisy spectrum (int32 [C]) of expected counts ``expected`` [C], drawn from the
        spectrum's own generator ``rng``.  ``poisson``: counting noise; ``none``: the
        expected counts rounded."""
        top = float(np.max(expected, initial=0.0))
        if not np.isfinite(top) or top >= _INT32_LIMIT:
            raise ValueError(
                f"expected counts: at most {_INT32_LIMIT:.3g} per channel fit the int32 "
                f"counts of a dataset, got {top:.3g} (lower the technique's intensity prior)"
            )
        if model == "none":
            return np.rint(expected).astype(np.int32)
        if model != "poisson" or model not in self.noise_models:
            raise ValueError(
                f"data.noise: expected one of {', '.join(self.noise_models)}, got {model!r}"
            )
        return rng.poisson(expected).astype(np.int32)

    # ------------------------------------------------------------------ spectrum axis
    @abc.abstractmethod
    def axis(self) -> Axis:
        """The physical coordinate along the channels."""

    def channel_coordinates(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Coordinates along the spectrum axis: name -> (values, attributes with units)."""
        ax = self.axis()
        return {ax.coordinate: (ax.values, dict(ax.attrs))}

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_cli(cls, subparsers: argparse._SubParsersAction) -> None:
        """Add the technique's verbs (``specinv <name> <verb>``); each sets ``func``.  The
        default adds none."""
        return None

    @classmethod
    def experiment_loader(cls) -> Callable[[str | Path], Any] | None:
        """The reader of the technique's experiment files (``specinv <name> simulate``),
        raising ConfigError (or ValueError) naming the file and the key; None (the default)
        for a technique without them."""
        return None

    @classmethod
    def measured_analysis(cls) -> Callable[..., Any] | None:
        """The analysis of measured spectra with a workflow run's networks (``specinv <name>
        analyze``; the workflow's ``measured`` section): a callable ``(results, spectra, out,
        *, size, refine, alpha, figures, progress)`` that writes ``analysis.csv``,
        ``analysis.nc`` and ``summary.png`` into the folder ``out`` and returns a one-line
        summary; None (the default) for a technique without one."""
        return None

    @classmethod
    def check_example(cls, path: str | Path) -> None:
        """Check a file for ``specinv <name> simulate`` (the workflow's ``example``) before
        any job runs.

        Raises:
            ConfigError: naming the file, the key and what was expected; for every file of
                a technique without a ``simulate`` verb (no :meth:`experiment_loader`).
        """
        loader = cls.experiment_loader()
        if loader is None:
            raise ConfigError(
                f"example.experiment: technique {cls.name!r} has no `specinv {cls.name} "
                f"simulate` command; expected null, got {str(path)!r}"
            )
        try:
            loader(path)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"example.experiment: {exc}") from None
