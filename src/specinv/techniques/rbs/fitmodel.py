"""What a fit of a measured RBS spectrum varies: sample and experiment parameters.

The workflow's networks and fits see a sample as the areal density of every element of
every layer.  The field's codes (SIMNRA, JaBS) describe it as an analyst thinks of it: per
layer a thickness (areal density, 1e15 at/cm²), a composition (atomic fractions, some known,
some to be found) and a roughness; and they fit experiment parameters too: the fluence ×
solid angle, the energy calibration and the detector resolution.  :class:`RBSFitModel`
maps a vector of such free parameters onto the simulator (through its :class:`Instrument`
values and, for rough layers, a Gauss quadrature of their thickness distribution), so that
Levenberg–Marquardt gets exact derivatives of all of them from one differentiable model.

Parameter names:

* ``fluence``: incident particles (the setup's solid angle is kept);
* ``offset``, ``gain``: energy calibration E = offset + gain·channel (keV, keV/channel);
* ``resolution``: detector resolution FWHM (keV);
* ``pileup``: the probability that a detected particle piles up with another;
  ``background``, ``background_low``: a flat background and a low-energy one ∝ 1/E²
  (counts per channel; the latter at the cut-off energy), see :mod:`specinv.physics.rbs.pileup`;
* ``layerN.thickness``, ``layerN.roughness``: areal density and its standard deviation
  (Gamma distribution, :mod:`specinv.physics.rbs.roughness`) of layer N (1 = surface);
* ``layerN.El``: atomic fraction of element El in layer N; the other elements of the layer
  that are not free keep their ratios and share what is left (1 − the free fractions).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...physics.rbs import Experiment, Instrument, Layer, RBSSimulator, Setup
from ...physics.rbs.roughness import rough_samples

#: parameters of the experiment, in the order of :class:`Instrument` where they are one
EXPERIMENT_PARAMETERS = (
    "fluence",
    "offset",
    "gain",
    "resolution",
    "pileup",
    "background",
    "background_low",
)
_LAYER_PARAMETER = re.compile(r"^layer(\d+)\.(\w+)$")
#: quadrature nodes per rough layer: doubled from the first until the spectra of n and 2n
#: nodes differ by Σ Δ²/(s + 1) < ROUGHNESS_TOLERANCE at the start, at most the last.  A
#: thin layer converges by 8 (the JaBS example's Au: 5, 10, 20 and 40 give the same reduced
#: χ² to 1e-3); a thick one whose roughness spreads its signal over many resolution widths
#: needs more (300 TFU Au with σ = 240 TFU: 80).  JaBS averages 20 grid cells by default.
ROUGHNESS_POINTS = (8, 16, 32, 64, 128)
ROUGHNESS_TOLERANCE = 0.01


class FitModelError(ValueError):
    """A free parameter that the model does not have, or a bad layer description."""


@dataclass(frozen=True)
class LayerModel:
    """A layer as an analyst describes it.

    Attributes:
        thickness_tfu: areal density (1e15 at/cm²), >= 0.
        fractions: atomic fraction of each element or isotope (normalised on construction).
        roughness_tfu: standard deviation of the thickness (Gamma distribution), >= 0.
    """

    thickness_tfu: float
    fractions: Mapping[str, float]
    roughness_tfu: float = 0.0

    def __post_init__(self):
        total = sum(self.fractions.values())
        if not self.fractions or not math.isfinite(total) or total <= 0:
            raise FitModelError(f"layer fractions: expected amounts > 0, got {self.fractions}")
        if any(v < 0 for v in self.fractions.values()):
            raise FitModelError(f"layer fractions: expected amounts >= 0, got {self.fractions}")
        object.__setattr__(self, "fractions", {k: v / total for k, v in self.fractions.items()})
        if not (math.isfinite(self.thickness_tfu) and self.thickness_tfu >= 0):
            raise FitModelError(f"layer thickness: expected >= 0, got {self.thickness_tfu}")
        if not (math.isfinite(self.roughness_tfu) and self.roughness_tfu >= 0):
            raise FitModelError(f"layer roughness: expected >= 0, got {self.roughness_tfu}")

    @classmethod
    def from_areal_densities(cls, amounts: Mapping[str, float], roughness_tfu: float = 0.0):
        return cls(float(sum(amounts.values())), dict(amounts), roughness_tfu)

    @property
    def areal_densities(self) -> dict[str, float]:
        return {k: v * self.thickness_tfu for k, v in self.fractions.items()}


@dataclass(frozen=True)
class FreeParameter:
    """One fitted quantity: its name, start, bounds and unit."""

    name: str
    start: float
    low: float
    high: float
    unit: str


@dataclass
class RBSFitModel:
    """Spectra [K, C] of K vectors of free parameters [K, P] (see the module docstring).

    Args:
        setup: beam, geometry, detector (its channel count is the spectrum's length).
        layers: the sample, surface first, with the starting values.
        free: names of the fitted parameters.
        roughness_points: quadrature nodes per rough layer (None: the fewest of
            :data:`ROUGHNESS_POINTS` whose spectrum at the start is converged).
        solid_angle_sr: the detector's solid angle, to state the fluence in particles (the
            setup holds fluence × solid angle); None: ``fluence`` is that product
            (particles·sr).

    A layer is rough when its roughness is > 0 or ``layerN.roughness`` is free.
    """

    setup: Setup
    layers: Sequence[LayerModel]
    free: Sequence[str]
    roughness_points: int | None = None
    solid_angle_sr: float | None = None
    device: str | torch.device = "cpu"
    dtype: torch.dtype = torch.float64
    parameters: list[FreeParameter] = field(init=False)

    def __post_init__(self):
        self.layers = tuple(self.layers)
        self.free = tuple(self.free)
        if len(set(self.free)) != len(self.free):
            raise FitModelError(f"free parameters: a name is listed twice in {list(self.free)}")
        self.structure = [list(layer.fractions) for layer in self.layers]
        self.simulator = RBSSimulator(
            self.setup, self.structure, device=self.device, dtype=self.dtype
        )
        self.parameters = [self._parameter(name) for name in self.free]
        self._index = {p.name: i for i, p in enumerate(self.parameters)}
        self.rough = [
            i
            for i, layer in enumerate(self.layers)
            if layer.roughness_tfu > 0 or f"layer{i + 1}.roughness" in self._index
        ]
        columns, start = [], 0
        for layer in self.structure:
            columns.append(list(range(start, start + len(layer))))
            start += len(layer)
        self._columns = columns
        if self.roughness_points is None:
            self.roughness_points = self._converged_points() if self.rough else 1
        elif self.roughness_points < 1:
            raise FitModelError(f"roughness points: expected >= 1, got {self.roughness_points}")

    def _converged_points(self) -> int:
        theta = torch.as_tensor(self.start[None], dtype=self.dtype, device=self.simulator.device)
        with torch.no_grad():
            self.roughness_points = ROUGHNESS_POINTS[0]
            before = self.simulate(theta)
            for n in ROUGHNESS_POINTS[1:]:
                self.roughness_points = n
                now = self.simulate(theta)
                if float(((now - before) ** 2 / (now.clamp(min=0.0) + 1.0)).sum()) < (
                    ROUGHNESS_TOLERANCE
                ):
                    return n // 2
                before = now
        return ROUGHNESS_POINTS[-1]

    # ------------------------------------------------------------------ parameters
    def _parameter(self, name: str) -> FreeParameter:
        s, det = self.setup, self.setup.detector
        if name == "fluence":
            fluence = self.fluence_of_setup
            unit = "particles" if self.solid_angle_sr else "particles*sr"
            return FreeParameter(name, fluence, 0.0, 100.0 * fluence, unit)
        if name == "offset":
            span = 50.0 * det.gain_keV_per_channel + 0.05 * s.beam_energy_keV
            return FreeParameter(
                name, det.offset_keV, det.offset_keV - span, det.offset_keV + span, "keV"
            )
        if name == "gain":
            g = det.gain_keV_per_channel
            return FreeParameter(name, g, 0.8 * g, 1.25 * g, "keV/channel")
        if name == "resolution":
            r = det.resolution_fwhm_keV
            return FreeParameter(name, r, 0.05 * r, 20.0 * r, "keV")
        if name == "pileup":
            return FreeParameter(name, det.pileup_probability, 0.0, 0.2, "probability")
        if name in ("background", "background_low"):
            start = s.background_counts if name == "background" else s.background_low_energy_counts
            return FreeParameter(name, start, 0.0, 1e9, "counts per channel")
        match = _LAYER_PARAMETER.match(name)
        if match is None or not 1 <= int(match[1]) <= len(self.layers):
            raise FitModelError(self._unknown(name))
        layer = self.layers[int(match[1]) - 1]
        what = match[2]
        if what == "thickness":
            t = layer.thickness_tfu
            return FreeParameter(name, t, 0.0, max(10.0 * t, 100.0), "1e15 at/cm2")
        if what == "roughness":
            t = layer.thickness_tfu
            return FreeParameter(name, layer.roughness_tfu, 0.0, max(3.0 * t, 1.0), "1e15 at/cm2")
        if what in layer.fractions:
            if len(layer.fractions) < 2:
                raise FitModelError(
                    f"{name}: layer {match[1]} holds only {what}; a fraction can only be fitted "
                    f"in a layer of several elements"
                )
            return FreeParameter(name, layer.fractions[what], 0.0, 1.0, "atomic fraction")
        raise FitModelError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        return (
            f"free parameter {name!r}: expected one of {', '.join(self.available())} "
            f"(layers counted from 1 at the surface)"
        )

    def available(self) -> list[str]:
        """Every name this sample and setup offer as a free parameter."""
        names = list(EXPERIMENT_PARAMETERS)
        for i, layer in enumerate(self.layers, 1):
            names += [f"layer{i}.thickness", f"layer{i}.roughness"]
            if len(layer.fractions) > 1:
                names += [f"layer{i}.{el}" for el in layer.fractions]
        return names

    @property
    def fluence_of_setup(self) -> float:
        """The setup's fluence (particles; particles·sr without a solid angle)."""
        return self.setup.fluence_times_solid_angle_sr / (self.solid_angle_sr or 1.0)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def start(self) -> np.ndarray:
        return np.array([p.start for p in self.parameters])

    @property
    def low(self) -> np.ndarray:
        return np.array([p.low for p in self.parameters])

    @property
    def high(self) -> np.ndarray:
        return np.array([p.high for p in self.parameters])

    @property
    def n_channels(self) -> int:
        return self.setup.detector.channels

    # ------------------------------------------------------------------ the model
    def _value(self, theta: torch.Tensor, name: str, default: float) -> torch.Tensor:
        i = self._index.get(name)
        if i is None:
            return theta.new_full((theta.shape[0],), float(default))
        return theta[:, i]

    def sample(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Areal densities [K, D] (simulator order) and roughness σ [K, rough layers]."""
        amounts, sigma = [], []
        for i, layer in enumerate(self.layers):
            n = i + 1
            thickness = self._value(theta, f"layer{n}.thickness", layer.thickness_tfu)
            free = {
                el: theta[:, self._index[f"layer{n}.{el}"]]
                for el in layer.fractions
                if f"layer{n}.{el}" in self._index
            }
            fixed = [el for el in layer.fractions if el not in free]
            left = 1.0 - sum(free.values()) if free else theta.new_ones(theta.shape[0])
            fixed_total = sum(layer.fractions[el] for el in fixed)
            for el in layer.fractions:
                if el in free:
                    fraction = free[el]
                elif fixed_total > 0:
                    fraction = left * (layer.fractions[el] / fixed_total)
                else:  # every element free, or the fixed ones at 0
                    fraction = theta.new_zeros(theta.shape[0])
                amounts.append(thickness * fraction.clamp(min=0.0))
            if i in self.rough:
                sigma.append(self._value(theta, f"layer{n}.roughness", layer.roughness_tfu))
        sigma_t = torch.stack(sigma, 1) if sigma else theta.new_zeros(theta.shape[0], 0)
        return torch.stack(amounts, 1), sigma_t

    def instrument(self, theta: torch.Tensor) -> Instrument:
        det = self.setup.detector
        fluence = self._value(theta, "fluence", self.fluence_of_setup)
        free = {
            name: theta[:, self._index[name]]
            for name in ("pileup", "background", "background_low")
            if name in self._index
        }
        return Instrument(
            fluence * (self.solid_angle_sr or 1.0),
            self._value(theta, "offset", det.offset_keV),
            self._value(theta, "gain", det.gain_keV_per_channel),
            self._value(theta, "resolution", det.resolution_fwhm_keV),
            free.get("pileup"),
            free.get("background"),
            free.get("background_low"),
        )

    def simulate(self, theta) -> torch.Tensor:
        """Expected counts [K, C] of the free parameters ``theta`` [K, P]."""
        theta = torch.as_tensor(theta, dtype=self.dtype, device=self.simulator.device)
        if theta.dim() != 2 or theta.shape[1] != len(self.parameters):
            raise ValueError(
                f"theta: expected shape [K, {len(self.parameters)}] ({', '.join(self.names)}), "
                f"got {tuple(theta.shape)}"
            )
        amounts, sigma = self.sample(theta)
        instrument = self.instrument(theta)
        if not self.rough:
            return self.simulator.simulate(amounts, instrument=instrument)
        rough = [self._columns[i] for i in self.rough]
        samples, weights = rough_samples(amounts, rough, sigma, self.roughness_points)
        m = weights.shape[1]
        spread = Instrument(*(None if v is None else v.repeat_interleave(m) for v in instrument))
        spectra = self.simulator.simulate(samples, instrument=spread, electronics=False)
        mean = (spectra.view(theta.shape[0], m, -1) * weights[..., None]).sum(1)
        return self.simulator.electronics(mean, instrument)

    def experiment(self, values, channels: int | None = None) -> Experiment:
        """The experiment with the free parameters at ``values`` [P]: the fitted setup
        (fluence, calibration, resolution) and sample (areal densities, roughness), with
        ``channels`` detector channels (default: the model's)."""
        theta = torch.as_tensor(np.asarray(values, dtype=np.float64)[None], dtype=self.dtype)
        with torch.no_grad():
            amounts, sigma = (x[0].tolist() for x in self.sample(theta))
            values = self.instrument(theta)
        q_omega, offset, gain, fwhm = (float(v[0]) for v in values[:4])
        electronics = [
            float(v[0]) if v is not None else default
            for v, default in zip(
                values[4:],
                (
                    self.setup.detector.pileup_probability,
                    self.setup.background_counts,
                    self.setup.background_low_energy_counts,
                ),
                strict=True,
            )
        ]
        det = replace(
            self.setup.detector,
            channels=channels or self.setup.detector.channels,
            offset_keV=offset,
            gain_keV_per_channel=gain,
            resolution_fwhm_keV=fwhm,
            pileup_probability=electronics[0],
        )
        setup = replace(
            self.setup,
            detector=det,
            fluence_times_solid_angle_sr=q_omega,
            background_counts=electronics[1],
            background_low_energy_counts=electronics[2],
        )
        rough = dict(zip(self.rough, sigma, strict=True))
        layers, it = [], iter(amounts)
        for i, names in enumerate(self.structure):
            layers.append(Layer({n: next(it) for n in names}, rough.get(i, 0.0)))
        return Experiment(setup, tuple(layers))

    @classmethod
    def from_experiment(cls, experiment: Experiment, free: Sequence[str], **kwargs):
        """A model whose start is ``experiment``'s sample (areal densities and roughness)."""
        layers = [
            LayerModel.from_areal_densities(layer.areal_densities, layer.roughness_tfu)
            for layer in experiment.layers
        ]
        return cls(experiment.setup, layers, free, **kwargs)
