"""Batched, differentiable XRD forward model of an ion-irradiated (strained, disordered)
crystal: strain and Debye–Waller depth profiles -> symmetric Bragg θ–2θ curve.

``XRDSimulator(setup).simulate(params)`` maps a batch of parameter vectors [B, D] to
intensities [B, A] on the setup's angle grid, in one pass of torch code (CPU or CUDA, float64
by default), differentiable in every parameter.

Model, per sample (the modules hold the details):

1. profiles (:mod:`.profiles`): N slices of thickness t/N; strain e(z) = e_max Σ w_k B_k(z)
   with cubic B-splines that vanish at the film/substrate interface; DW(z) either coupled to
   the strain, exp(−α (e/e_max)²) with min DW = DW_min (Boulle & Debelle 2023), or an
   independent B-spline tending to 1 at the interface (RaDMaX);
2. coherent reflectivity R(θ) = |Y|² of the layer on its perfect substrate by the recursive
   solution of the Takagi–Taupin equations (:mod:`.takagi_taupin`), σ, π or unpolarised;
3. instrument (:mod:`.instrument`): R convolved with a pseudo-Voigt of FWHM H (degrees of θ,
   i.e. of ω in a coupled scan) and mixing η, then I = scale · R_conv / max R_conv +
   background (normalization "max", as RaDMaX and the paper) or scale · R_conv + background
   (normalization "none").

Parameter layout (columns of ``params``; :attr:`XRDSimulator.parameter_names` and
``parameter_units`` list them):

====================================  =========  ===============================================
``strain_w1`` … ``strain_w{n}``       1          B-spline weights, interface first (RaDMaX order)
``strain_max``                        1          e_max (0.01 = 1 %; 0.01 with RaDMaX's % weights)
``thickness_A``                       Å          damaged thickness t
``dw_min``  (dw_model strain_coupled) 1          smallest DW factor, in (0, 1]
``dw_w1`` … ``dw_w{m}`` (dw_model     1          DW B-spline weights, interface first
spline)
``fwhm_deg``                          deg (θ)    instrument FWHM on the θ (ω) axis; on a 2θ axis
                                                 the curve is broadened by 2·fwhm_deg
``background``                        intensity  constant added after scaling
``scale``                             intensity  peak (normalization "max") or reflectivity
                                                 multiplier (normalization "none")
====================================  =========  ===============================================

Angle axes: ``two_theta_deg`` (2θ in degrees; θ = 2θ/2), ``theta_deg`` (θ = ω in degrees) or
``dq_over_q`` ((Q − Q_B)/Q_B with Q = 4π sin θ/λ; negative on the tensile side).  The grid must
be uniform in its own coordinate (the instrument kernel is sampled on it; on the ΔQ/Q_B axis
its width is converted at θ_B, dθ = d(ΔQ/Q_B) tan θ_B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch

from .crystal import Crystal, Reflection, reflection
from .instrument import (
    NORMALIZATIONS,
    Normalization,
    convolve_same,
    instrument_kernel,
    scale_and_background,
)
from .profiles import (
    SAMPLINGS,
    Sampling,
    dw_from_strain,
    dw_spline,
    slice_basis,
    slice_depths_fraction,
    strain_shape,
)
from .takagi_taupin import recursive_amplitude

AngleAxis = Literal["two_theta_deg", "theta_deg", "dq_over_q"]
ANGLE_AXES: tuple[str, ...] = ("two_theta_deg", "theta_deg", "dq_over_q")
DWModel = Literal["strain_coupled", "spline"]
DW_MODELS: tuple[str, ...] = ("strain_coupled", "spline")
Polarization = Literal["sigma", "pi", "unpolarized"]
POLARIZATIONS: tuple[str, ...] = ("sigma", "pi", "unpolarized")


class XRDSetupError(ValueError):
    """A bad simulator setting or parameter array (the message names key, expected, actual)."""


@dataclass(frozen=True, eq=False)
class XRDSetup:
    """What stays fixed across a batch: crystal, reflection, wavelength, angle grid, slicing,
    basis sizes and instrument options.

    Attributes:
        crystal: the crystal (film and substrate share it).
        hkl: the symmetric reflection (planes parallel to the surface).
        wavelength_A: X-ray wavelength in Å.
        angles: the angle grid (1-D, uniform, increasing), in the unit of ``axis``.
        axis: ``"two_theta_deg"``, ``"theta_deg"`` or ``"dq_over_q"``.
        n_slices: slices of the damaged layer.
        n_strain_weights: free strain B-spline weights (>= 3).
        dw_model: ``"strain_coupled"`` (one parameter, DW_min) or ``"spline"``.
        n_dw_weights: free DW B-spline weights (dw_model "spline" only).
        sampling: where a slice reads the profiles, ``"midpoint"`` or ``"surface_edge"``
            (RaDMaX).
        polarization: ``"sigma"``, ``"pi"`` or ``"unpolarized"`` (mean of the two).
        pv_eta: Lorentzian fraction of the pseudo-Voigt instrument function.
        normalization: ``"max"`` or ``"none"`` (see the module docstring).
        margin_deg: θ range (degrees) computed beyond each end of the grid so that the
            convolution sees the intensity there; 0 treats it as zero (as RaDMaX does).
    """

    crystal: Crystal
    hkl: tuple[int, int, int]
    wavelength_A: float
    angles: np.ndarray
    axis: AngleAxis = "two_theta_deg"
    n_slices: int = 60
    n_strain_weights: int = 10
    dw_model: DWModel = "strain_coupled"
    n_dw_weights: int = 10
    sampling: Sampling = "midpoint"
    polarization: Polarization = "sigma"
    pv_eta: float = 0.0
    normalization: Normalization = "max"
    margin_deg: float = 0.0

    def __post_init__(self):
        angles = np.array(self.angles, dtype=np.float64)
        angles.setflags(write=False)
        object.__setattr__(self, "angles", angles)
        object.__setattr__(self, "hkl", tuple(int(x) for x in self.hkl))
        choices = {
            "axis": (self.axis, ANGLE_AXES),
            "dw_model": (self.dw_model, DW_MODELS),
            "sampling": (self.sampling, SAMPLINGS),
            "polarization": (self.polarization, POLARIZATIONS),
            "normalization": (self.normalization, NORMALIZATIONS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise XRDSetupError(f"{key}: expected one of {allowed}, got {value!r}")
        for key in ("n_slices", "n_strain_weights", "n_dw_weights"):
            value = getattr(self, key)
            least = 1 if key == "n_slices" else 3
            if not (isinstance(value, int) and value >= least):
                raise XRDSetupError(f"{key}: expected an integer >= {least}, got {value!r}")
        if not (0.0 <= self.pv_eta <= 1.0):
            raise XRDSetupError(f"pv_eta: expected a value in [0, 1], got {self.pv_eta!r}")
        if not (math.isfinite(self.margin_deg) and self.margin_deg >= 0):
            raise XRDSetupError(f"margin_deg: expected a value >= 0, got {self.margin_deg!r}")
        if angles.ndim != 1 or angles.size < 2 or not np.all(np.isfinite(angles)):
            raise XRDSetupError(
                f"angles: expected a 1-D array of >= 2 finite values, got shape {angles.shape}"
            )
        steps = np.diff(angles)
        step = (angles[-1] - angles[0]) / (angles.size - 1)
        if not step > 0 or np.max(np.abs(steps - step)) > 1e-3 * step:
            raise XRDSetupError(
                f"angles: expected a uniform increasing grid, got steps from {steps.min():.6g} "
                f"to {steps.max():.6g} {self.axis}"
            )

    @property
    def step(self) -> float:
        """Grid step in the unit of ``axis``."""
        return float((self.angles[-1] - self.angles[0]) / (self.angles.size - 1))


@dataclass(frozen=True)
class XRDParameters:
    """One batch of samples, tensors of the simulator's dtype and device (see the module
    docstring for units).  ``dw`` is [B] DW_min (dw_model "strain_coupled") or
    [B, n_dw_weights] weights (dw_model "spline")."""

    strain_weights: torch.Tensor
    strain_max: torch.Tensor
    thickness_A: torch.Tensor
    dw: torch.Tensor
    fwhm_deg: torch.Tensor
    background: torch.Tensor
    scale: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.strain_weights.shape[0]


@dataclass(frozen=True)
class SliceProfiles:
    """Depth profiles on the slices, surface first: depth of each slice's sampling point below
    the surface (Å), strain (dimensionless) and DW factor; each [B, n_slices]."""

    depth_A: torch.Tensor
    strain: torch.Tensor
    dw: torch.Tensor


class XRDSimulator:
    """Forward model of :mod:`specinv.physics.xrd` for one :class:`XRDSetup`.

    Args:
        setup: the fixed settings.
        device: torch device of the tensors it returns (default CPU).
        dtype: real dtype (float64 default; float32 halves memory and time on GPUs).
        batch_chunk: simulate at most this many samples at a time (results are the same;
            chunks of ~100 keep a CPU's caches warm: 1.7x faster than 1000 at once for 501
            angles); default 128 on CPU, the whole batch on other devices.
    """

    def __init__(
        self,
        setup: XRDSetup,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
        batch_chunk: int | None = None,
    ):
        self.setup = setup
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        if batch_chunk is None and self.device.type == "cpu":
            batch_chunk = 128
        if batch_chunk is not None and not (isinstance(batch_chunk, int) and batch_chunk >= 1):
            raise XRDSetupError(f"batch_chunk: expected an integer >= 1, got {batch_chunk!r}")
        self.batch_chunk = batch_chunk
        self.reflection: Reflection = reflection(setup.crystal, setup.hkl, setup.wavelength_A)
        theta_b = self.reflection.bragg_angle_rad
        self._axis_per_theta_deg = {
            "two_theta_deg": 2.0,
            "theta_deg": 1.0,
            "dq_over_q": math.radians(1.0) / math.tan(theta_b),
        }[setup.axis]
        self.n_margin = math.ceil(setup.margin_deg * self._axis_per_theta_deg / setup.step - 1e-9)
        m = self.n_margin
        grid = setup.angles[0] + setup.step * np.arange(-m, setup.angles.size + m)
        grid[m : m + setup.angles.size] = setup.angles
        theta = self._theta_rad(grid)
        self.theta_rad = theta
        self._delta_theta = torch.as_tensor(theta - theta_b, dtype=dtype, device=self.device)
        self._strain_basis = slice_basis(
            setup.n_strain_weights, setup.n_slices, setup.sampling, device=self.device, dtype=dtype
        )
        self._dw_basis = (
            slice_basis(
                setup.n_dw_weights, setup.n_slices, setup.sampling, device=self.device, dtype=dtype
            )
            if setup.dw_model == "spline"
            else None
        )
        self._depth_fraction = torch.as_tensor(
            slice_depths_fraction(setup.n_slices, setup.sampling), dtype=dtype, device=self.device
        )
        c_pi = abs(math.cos(2 * theta_b))
        self._polarization_factors = {
            "sigma": (1.0,),
            "pi": (c_pi,),
            "unpolarized": (1.0, c_pi),
        }[setup.polarization]

    # ---------------------------------------------------------------- parameter layout
    @property
    def parameter_names(self) -> tuple[str, ...]:
        s = self.setup
        strain = tuple(f"strain_w{k}" for k in range(1, s.n_strain_weights + 1))
        dw = (
            ("dw_min",)
            if s.dw_model == "strain_coupled"
            else tuple(f"dw_w{k}" for k in range(1, s.n_dw_weights + 1))
        )
        return strain + ("strain_max", "thickness_A") + dw + ("fwhm_deg", "background", "scale")

    @property
    def parameter_units(self) -> tuple[str, ...]:
        units = {"thickness_A": "Å", "fwhm_deg": "deg", "background": "intensity"}
        units["scale"] = "intensity"
        return tuple(units.get(name, "1") for name in self.parameter_names)

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    def angles(self) -> np.ndarray:
        """The output grid (unit of ``setup.axis``)."""
        return self.setup.angles

    def unpack(self, params: torch.Tensor) -> XRDParameters:
        """Split [B, D] parameter vectors (layout :attr:`parameter_names`) into fields."""
        if params.ndim != 2 or params.shape[1] != self.n_parameters:
            raise XRDSetupError(
                f"params: expected shape [B, {self.n_parameters}] "
                f"({', '.join(self.parameter_names)}), got {list(params.shape)}"
            )
        n_s = self.setup.n_strain_weights
        n_dw = 1 if self.setup.dw_model == "strain_coupled" else self.setup.n_dw_weights
        p = params.to(device=self.device, dtype=self.dtype)
        dw = p[:, n_s + 2 : n_s + 2 + n_dw]
        return XRDParameters(
            strain_weights=p[:, :n_s],
            strain_max=p[:, n_s],
            thickness_A=p[:, n_s + 1],
            dw=dw[:, 0] if self.setup.dw_model == "strain_coupled" else dw,
            fwhm_deg=p[:, -3],
            background=p[:, -2],
            scale=p[:, -1],
        )

    def pack(self, p: XRDParameters) -> torch.Tensor:
        """The inverse of :meth:`unpack`: [B, D]."""
        dw = p.dw[:, None] if p.dw.ndim == 1 else p.dw
        columns = [
            p.strain_weights,
            p.strain_max[:, None],
            p.thickness_A[:, None],
            dw,
            p.fwhm_deg[:, None],
            p.background[:, None],
            p.scale[:, None],
        ]
        return torch.cat([c.to(device=self.device, dtype=self.dtype) for c in columns], dim=1)

    def check(self, p: XRDParameters) -> None:
        """Raise :class:`XRDSetupError` naming the first parameter out of its physical range
        (shapes, thickness > 0, DW_min in (0, 1], fwhm >= 0, all finite)."""
        b = p.batch_size
        s = self.setup
        expected = {
            "strain_weights": (b, s.n_strain_weights),
            "strain_max": (b,),
            "thickness_A": (b,),
            "dw": (b,) if s.dw_model == "strain_coupled" else (b, s.n_dw_weights),
            "fwhm_deg": (b,),
            "background": (b,),
            "scale": (b,),
        }
        for name, shape in expected.items():
            value = getattr(p, name)
            if tuple(value.shape) != shape:
                raise XRDSetupError(
                    f"{name}: expected shape {list(shape)}, got {list(value.shape)}"
                )
            bad = ~torch.isfinite(value.detach())
            if bad.any():
                raise XRDSetupError(f"{name}: expected finite values, got {value[bad][0].item()}")
        ranges = [
            ("thickness_A", p.thickness_A, "> 0 Å", p.thickness_A > 0),
            ("fwhm_deg", p.fwhm_deg, ">= 0", p.fwhm_deg >= 0),
        ]
        if s.dw_model == "strain_coupled":
            ranges.append(("dw_min", p.dw, "in (0, 1]", (p.dw > 0) & (p.dw <= 1)))
        for name, value, expectation, ok in ranges:
            if not bool(ok.all()):
                index = int((~ok).nonzero()[0, 0])
                raise XRDSetupError(
                    f"{name}: expected {expectation}, got {value[index].item()!r} (sample {index})"
                )

    # ---------------------------------------------------------------- model
    def profiles(self, p: XRDParameters) -> SliceProfiles:
        """Strain and DW of every slice (surface first) and the depth of its sampling point."""
        shape = strain_shape(self._strain_basis, p.strain_weights)
        strain = p.strain_max[:, None] * shape
        if self.setup.dw_model == "strain_coupled":
            dw = dw_from_strain(shape, p.dw)
        else:
            dw = dw_spline(self._dw_basis, p.dw)
        depth = p.thickness_A[:, None] * self._depth_fraction
        return SliceProfiles(depth_A=depth, strain=strain, dw=dw)

    def coherent_reflectivity(self, p: XRDParameters) -> torch.Tensor:
        """R(θ) = |D_h/D_0|² before the instrument function, on the computation grid (the
        output grid plus ``n_margin`` points at each end): [B, A + 2·n_margin]."""
        prof = self.profiles(p)
        r = self.reflection
        total = None
        for c in self._polarization_factors:
            y = recursive_amplitude(
                self._delta_theta,
                prof.strain,
                prof.dw,
                p.thickness_A / self.setup.n_slices,
                bragg_angle_rad=r.bragg_angle_rad,
                wavelength_A=r.wavelength_A,
                chi_0=r.chi_0,
                chi_h=r.chi_h,
                chi_hbar=r.chi_hbar,
                polarization_factor=c,
            )
            intensity = y.real**2 + y.imag**2
            total = intensity if total is None else total + intensity
        return total / len(self._polarization_factors)

    def simulate_parameters(self, p: XRDParameters, *, check: bool = True) -> torch.Tensor:
        """Intensities [B, A] on the output grid."""
        if check:
            self.check(p)
        chunk = self.batch_chunk
        if chunk is not None and p.batch_size > chunk:
            parts = [
                self.simulate_parameters(_batch_slice(p, i, i + chunk), check=False)
                for i in range(0, p.batch_size, chunk)
            ]
            return torch.cat(parts, dim=0)
        coherent = self.coherent_reflectivity(p)
        fwhm_steps = p.fwhm_deg * (self._axis_per_theta_deg / self.setup.step)
        kernel = instrument_kernel(coherent.shape[1], fwhm_steps, self.setup.pv_eta)
        smeared = convolve_same(coherent, kernel)
        m = self.n_margin
        smeared = smeared[:, m : smeared.shape[1] - m]
        return scale_and_background(smeared, p.scale, p.background, self.setup.normalization)

    def simulate(self, params: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Intensities [B, A] for parameter vectors [B, D] (layout :attr:`parameter_names`)."""
        return self.simulate_parameters(self.unpack(params), check=check)

    # ---------------------------------------------------------------- helpers
    def _theta_rad(self, grid: np.ndarray) -> np.ndarray:
        axis = self.setup.axis
        if axis == "two_theta_deg":
            theta = np.radians(grid) / 2
        elif axis == "theta_deg":
            theta = np.radians(grid)
        else:
            sine = (1 + grid) * math.sin(self.reflection.bragg_angle_rad)
            if np.any(np.abs(sine) >= 1):
                raise XRDSetupError(
                    "angles: expected ΔQ/Q_B values with |(1 + ΔQ/Q_B) sin θ_B| < 1 "
                    f"(θ < 90°), got up to {grid.max():.4g} (margin included)"
                )
            theta = np.arcsin(sine)
        if np.any(theta <= 0) or np.any(theta >= math.pi / 2):
            raise XRDSetupError(
                f"angles: expected θ in (0°, 90°) (margin included), got "
                f"[{math.degrees(theta.min()):.4g}°, {math.degrees(theta.max()):.4g}°]"
            )
        return theta


def _batch_slice(p: XRDParameters, start: int, stop: int) -> XRDParameters:
    """Samples start..stop-1 of a batch."""
    return XRDParameters(**{f.name: getattr(p, f.name)[start:stop] for f in fields(p)})


def convert_axis(
    values: np.ndarray, source: str, target: str, bragg_angle_rad: float
) -> np.ndarray:
    """Points of one angle axis on another (:data:`ANGLE_AXES`): 2θ or θ in degrees, or
    ΔQ/Q_B = sin θ / sin θ_B − 1 for the reflection of Bragg angle ``bragg_angle_rad``.

    Raises:
        XRDSetupError: an unknown axis, or ΔQ/Q_B values beyond θ = 90°.
    """
    for name in (source, target):
        if name not in ANGLE_AXES:
            raise XRDSetupError(f"axis: expected one of {', '.join(ANGLE_AXES)}, got {name!r}")
    values = np.asarray(values, dtype=np.float64)
    sin_b = math.sin(bragg_angle_rad)
    if source == "two_theta_deg":
        theta = np.radians(values) / 2
    elif source == "theta_deg":
        theta = np.radians(values)
    else:
        if np.any(np.abs((1 + values) * sin_b) >= 1):
            raise XRDSetupError("angles: ΔQ/Q_B values beyond θ = 90°")
        theta = np.arcsin((1 + values) * sin_b)
    if target == "two_theta_deg":
        return 2 * np.degrees(theta)
    if target == "theta_deg":
        return np.degrees(theta)
    return np.sin(theta) / sin_b - 1
