"""XRD as a :class:`~specinv.techniques.base.Technique` (Boulle & Debelle 2023).

Parameters of a curve (the paper's 14 outputs plus the intensity scale):

=======================  ==============  ====================================================
``strain_w1`` … ``w10``  %               strain B-spline weights, interface first (e_max ×
                                         the shape's weights; the strain profile is
                                         Σ w_k B_k(z), in %)
``thickness_nm``         nm              damaged thickness t
``dw_min``               1               smallest Debye–Waller factor (DW coupled to the
                                         strain: exp(−α (e/e_max)²), the paper's eq. 4)
``fwhm_deg``             deg             FWHM H of the Gaussian instrument function (θ)
``dynamic_range``        decades         DR = log10(I_max / I_min) of the curve
``log10_peak``           log10(counts)   κ: the curve is 10^κ at its peak (before noise)
=======================  ==============  ====================================================

The curve is I = 10^κ (R + b) with R the coherent reflectivity convolved with the
instrument and normalised to a peak of 1, and the constant background b chosen so that the
curve's dynamic range is DR: b = (1 − 10^DR min R)/(10^DR − 1) (0 where min R is above
10^−DR, whose curves then have a smaller range).  The paper draws the background (1–100
counts) and the scale and rejects curves whose DR falls outside [3, 6]; drawing DR itself
uniformly in that range gives the same support without a simulation in the sampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from ...config.errors import ConfigError
from ...config.schema import load_schema
from ...evaluation.metrics import profile_errors
from ...physics.xrd import CrystalError, XRDSetup, XRDSetupError, XRDSimulator, load_crystal
from ...physics.xrd.profiles import bspline_design_matrix
from ..base import Axis, Technique
from ..priors import Prior
from .sampling import FIT_POINTS, N_SHAPE_UNIFORMS, random_strain_shapes

#: the scalar parameters after the strain weights, with their units and prior keys
SCALARS = (
    ("thickness_nm", "nm"),
    ("dw_min", "1"),
    ("fwhm_deg", "deg"),
    ("dynamic_range", "decades"),
    ("log10_peak", "log10(counts)"),
)
#: strain weights are in %; the simulator's e_max is then 1 %
PERCENT = 0.01
#: profiles drawn (with a fixed seed) to find the box of the strain weights
_BOX_SAMPLES = 20_000

AXIS_LABELS = {
    "dq_over_q": ("ΔQ/Q_B", "1", "(Q - Q_B)/Q_B"),
    "two_theta_deg": ("2θ (deg)", "deg", "scattering angle 2θ"),
    "theta_deg": ("θ (deg)", "deg", "incidence angle θ (ω)"),
}


class XRDTechnique(Technique):
    """X-ray diffraction: strain and disorder depth profiles of ion-irradiated crystals."""

    name: ClassVar[str] = "xrd"
    task: ClassVar[str] = "regression"
    config_schema: ClassVar[dict] = load_schema(__package__, "xrd.schema.yaml")
    #: diffraction curves span 3–6 decades: fitted in log intensity, as RaDMaX fits them
    fit_statistic: ClassVar[str] = "log10"
    #: the strain profile (the paper's Figs. 1 and 4)
    depth_profile_labels: ClassVar[tuple[str, str] | None] = (
        "depth below the surface (nm)",
        "strain (%)",
    )
    #: the paper's inputs are log intensities; every point kept, none merged or smoothed
    preprocessing_defaults: ClassVar[dict] = {
        "first_channel": 0,
        "merge": 1,
        "log": True,
        "prune": "none",
        "savgol": {"window": 0, "polyorder": 2},
    }

    def __init__(
        self,
        section: Mapping[str, Any],
        *,
        device=None,
        dtype=None,
    ):
        self.section = dict(section)
        try:
            self.crystal = load_crystal(section["crystal"])
        except (CrystalError, ConfigError) as exc:
            raise ConfigError(f"crystal: {exc}") from None
        axis = section["axis"]
        if not axis["stop"] > axis["start"]:
            raise ConfigError(
                f"axis: expected stop > start, got start {axis['start']}, stop {axis['stop']}"
            )
        self.angles = np.linspace(axis["start"], axis["stop"], axis["points"])
        try:
            self.setup = XRDSetup(
                crystal=self.crystal,
                hkl=tuple(section["reflection"]),
                wavelength_A=section["wavelength_A"],
                angles=self.angles,
                axis=axis["coordinate"],
                n_slices=section["slices"],
                n_strain_weights=section["strain_weights"],
                dw_model="strain_coupled",
                polarization=section["polarization"],
                pv_eta=section["pv_eta"],
                normalization="max",
                margin_deg=section["margin_deg"],
            )
        except (XRDSetupError, CrystalError) as exc:
            raise ConfigError(str(exc)) from None
        self.n_weights = section["strain_weights"]
        self.parameter_names = [f"strain_w{k}" for k in range(1, self.n_weights + 1)] + [
            name for name, _ in SCALARS
        ]
        self.parameter_units = ["%"] * self.n_weights + [unit for _, unit in SCALARS]
        self.priors = {
            name: Prior.parse(
                section["prior"][name], None, f"prior.{name}", minimum=_MINIMA.get(name)
            )
            for name in ("strain_max_percent", *(n for n, _ in SCALARS))
        }
        if self.priors["dw_min"].high > 1:
            raise ConfigError(f"prior.dw_min.high: expected <= 1, got {self.priors['dw_min'].high}")
        for name in ("thickness_nm", "fwhm_deg", "dw_min"):
            if self.priors[name].low <= 0:
                raise ConfigError(f"prior.{name}.low: expected > 0, got {self.priors[name].low}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float64

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, device=None, dtype=None) -> XRDTechnique:
        return cls(section, device=device, dtype=dtype)

    @cached_property
    def simulator(self) -> XRDSimulator:
        """The Takagi–Taupin forward model (built on first use)."""
        return XRDSimulator(self.setup, device=self.device, dtype=self.dtype)

    def identity(self) -> dict[str, Any]:
        crystal = self.crystal
        return {
            **self.section,
            "crystal": {
                "name": crystal.name,
                "lattice": repr(crystal.lattice),
                "sites": [repr(s) for s in crystal.sites],
            },
        }

    def describe(self) -> dict[str, Any]:
        return {"technique": self.name, **self.identity(), "parameters": self.parameter_names}

    # ------------------------------------------------------------------ parameters
    @cached_property
    def _fit_design(self) -> tuple[np.ndarray, np.ndarray]:
        depths = (np.arange(FIT_POINTS) + 0.5) / FIT_POINTS  # fractions of t from the surface
        design = bspline_design_matrix(self.n_weights, 1.0 - depths)[:, 3:]
        return design, depths

    @property
    def n_uniforms(self) -> int:
        return N_SHAPE_UNIFORMS + self.n_weights + 1 + len(SCALARS)

    def sample(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        design, depths = self._fit_design
        k = N_SHAPE_UNIFORMS + self.n_weights
        shapes = random_strain_shapes(u[:, :k], design, depths)
        e_max = self.priors["strain_max_percent"].transform(u[:, k])
        scalars = [
            self.priors[name].transform(u[:, k + 1 + i]) for i, (name, _) in enumerate(SCALARS)
        ]
        return np.column_stack([shapes * e_max[:, None], *scalars])

    @cached_property
    def _weight_box(self) -> tuple[float, float]:
        """Bounds of the strain weights (%): those of many drawn shapes (fixed seed) times
        the largest e_max, widened by 10 %."""
        design, depths = self._fit_design
        u = np.random.default_rng(0).random((_BOX_SAMPLES, N_SHAPE_UNIFORMS + self.n_weights))
        shapes = random_strain_shapes(u, design, depths)
        top = self.priors["strain_max_percent"].high
        low, high = min(shapes.min(), 0.0) * top, shapes.max() * top
        return low - 0.1 * (high - low), high + 0.1 * (high - low)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = self._weight_box
        lows = [low] * self.n_weights + [self.priors[n].low for n, _ in SCALARS]
        highs = [high] * self.n_weights + [self.priors[n].high for n, _ in SCALARS]
        return np.asarray(lows), np.asarray(highs)

    def prior_description(self) -> dict[str, Any]:
        return {
            "strain_shape": "Boulle & Debelle 2023, section 2.1.1 "
            "(specinv.techniques.xrd.sampling)",
            **{name: prior.to_dict() for name, prior in self.priors.items()},
        }

    def derived_errors(self, estimate: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
        """The paper's derived accuracies: the relative error of e_max (the profile's
        maximum), and σ_e / e_max, the rms difference of the strain profiles e(z) over depth
        z relative to the true e_max (:func:`~specinv.evaluation.metrics.profile_errors`:
        over the union of both damaged depths, the strain 0 below each one's thickness;
        a profile of the right shape but the wrong thickness counts as wrong)."""
        est_depth, est_profile = self.depth_profiles(estimate)
        true_depth, true_profile = self.depth_profiles(true)
        e_max_true = true_profile.max(axis=1)
        e_max_est = est_profile.max(axis=1)
        return {
            "e_max": (e_max_est - e_max_true) / e_max_true,
            "strain": profile_errors(est_depth, est_profile, true_depth, true_profile),
        }

    def figure_parameters(self) -> list[str]:
        """The scalars (t, DW_min, H, DR, κ; the paper's Fig. 3); the strain weights only
        make sense together, as the strain profile."""
        return [name for name, _ in SCALARS]

    def depth_profiles(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Strain profiles (%) [n, 200] against depth below the surface (nm) [n, 200], at
        the same fractions (i + ½)/200 of each profile's damaged thickness (the strain is
        0 below it, in the undamaged crystal)."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        strain = self.strain_profiles(params)
        fractions = (np.arange(strain.shape[1]) + 0.5) / strain.shape[1]
        thickness = params[:, self.parameter_names.index("thickness_nm")]
        return fractions[None, :] * thickness[:, None], strain

    # ------------------------------------------------------------------ forward model
    @property
    def n_channels(self) -> int:
        return len(self.angles)

    def simulate(self, params: torch.Tensor) -> torch.Tensor:
        """Expected counts [B, points] of parameters [B, D] (or [D] -> [points])."""
        p = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        single = p.ndim == 1
        p = p[None] if single else p
        n = self.n_weights
        thickness_nm, dw_min, fwhm, dynamic_range, log10_peak = p[:, n:].unbind(1)
        ones = torch.ones_like(thickness_nm)
        reflectivity = self.simulator.simulate(
            torch.column_stack(
                [
                    p[:, :n],
                    PERCENT * ones,
                    10.0 * thickness_nm,
                    dw_min,
                    fwhm,
                    torch.zeros_like(ones),
                    ones,
                ]
            )
        )
        ratio = 10.0**dynamic_range
        floor = reflectivity.min(dim=1).values
        background = ((1.0 - ratio * floor) / (ratio - 1.0)).clamp(min=0.0)
        counts = 10.0 ** log10_peak[:, None] * (reflectivity + background[:, None])
        return counts[0] if single else counts

    def axis(self) -> Axis:
        label, unit, long_name = AXIS_LABELS[self.setup.axis]
        return Axis(
            self.setup.axis,
            np.asarray(self.angles),
            label,
            {"units": unit, "long_name": long_name},
        )

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_cli(cls, subparsers) -> None:
        from .cli import add_cli

        add_cli(subparsers)

    @classmethod
    def experiment_loader(cls):
        from .cli import load_xrd_experiment

        return load_xrd_experiment

    def strain_profiles(self, params: np.ndarray, n_depths: int = 200) -> np.ndarray:
        """Strain (%) [n, n_depths] at depths (i + ½) t / n_depths below the surface."""
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        depths = (np.arange(n_depths) + 0.5) / n_depths
        design = bspline_design_matrix(self.n_weights, 1.0 - depths)[:, 3:]
        return params[:, : self.n_weights] @ design.T


#: smallest allowed prior bounds
_MINIMA = {"thickness_nm": 0.0, "fwhm_deg": 0.0, "dw_min": 0.0, "strain_max_percent": 0.0}
