"""Two small techniques that live only in the tests, registered as plug-ins through the
entry-point group ``specinv.techniques`` (see ``specinv_test_peaks-1.0.dist-info`` beside
this file; put this folder on ``PYTHONPATH`` to use them).  They show that a technique
plugs into the whole workflow with nothing but its own module and one registry line.

``test_peaks`` (regression): a spectrum is a constant background plus K Gaussian peaks of
one width on an axis x; the parameters are each peak's signed position and its amplitude
(counts at the maximum).  ``test_peak_labels`` (multi-label classification): L candidate
peaks at fixed positions, each present with a probability; the parameters are the
amplitudes (0 for an absent peak) and the targets the presence of each peak.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from specinv.config import ConfigError
from specinv.techniques import Axis, Technique
from specinv.techniques.priors import Prior, prior_box, sample_independent

PRIOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "law": {"enum": ["uniform", "loguniform", "fixed"], "default": "uniform"},
        "low": {"type": "number"},
        "high": {"type": "number"},
    },
}
AXIS = {
    "channels": {"type": "integer", "minimum": 8, "default": 200},
    "x_min": {"type": "number", "default": -10.0},
    "x_max": {"type": "number", "default": 10.0},
    "width": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 0.8,
        "description": "standard deviation of every peak, in x units",
    },
    "background": {
        "type": "number",
        "minimum": 0,
        "default": 5.0,
        "description": "counts per channel",
    },
}


class _Peaks(Technique):
    """Shared by both: the x axis, the peak shape, the device."""

    preprocessing_defaults: ClassVar[dict] = {"first_channel": 0, "merge": 2, "prune": "none"}

    def _setup(self, section: Mapping[str, Any], device, dtype) -> None:
        if section["x_max"] <= section["x_min"]:
            raise ConfigError(
                f"x_max: expected a value above x_min ({section['x_min']}), got {section['x_max']}"
            )
        self.section = dict(section)
        self.x = np.linspace(section["x_min"], section["x_max"], section["channels"])
        self.device = torch.device(device or "cpu")
        self.dtype = dtype or torch.float64
        self._x = torch.as_tensor(self.x, dtype=self.dtype, device=self.device)

    @property
    def n_channels(self) -> int:
        return len(self.x)

    def _spectra(self, position: torch.Tensor, amplitude: torch.Tensor) -> torch.Tensor:
        z = (self._x - position[..., None]) / self.section["width"]  # [B, K, C]
        return self.section["background"] + (amplitude[..., None] * torch.exp(-0.5 * z * z)).sum(1)

    def axis(self) -> Axis:
        return Axis("position_mm", self.x, "position (mm)", {"units": "mm"})

    def identity(self) -> dict[str, Any]:
        return {"section": self.section}

    def describe(self) -> dict[str, Any]:
        return {"technique": self.name, **self.section}


class GaussianPeaks(_Peaks):
    """Gaussian peaks on a background: positions (signed) and amplitudes of K peaks."""

    name: ClassVar[str] = "test_peaks"
    task: ClassVar[str] = "regression"
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["peaks"],
        "properties": {
            **AXIS,
            "peaks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["position", "amplitude"],
                    "properties": {"position": PRIOR, "amplitude": PRIOR},
                },
            },
        },
    }

    def __init__(self, section: Mapping[str, Any], priors: list[Prior], *, device=None, dtype=None):
        self._setup(section, device, dtype)
        self.priors = priors
        k = len(priors) // 2
        self.parameter_names = [
            f"peak{i + 1}:{q}" for i in range(k) for q in ("position", "amplitude")
        ]
        self.parameter_units = ["mm", "counts"] * k

    @classmethod
    def from_config(cls, section, *, device=None, dtype=None):
        priors = []
        for i, peak in enumerate(section["peaks"]):
            priors.append(Prior.parse(peak["position"], None, f"peaks[{i}].position"))
            priors.append(
                Prior.parse(
                    peak["amplitude"], None, f"peaks[{i}].amplitude", minimum=0.0, what="counts"
                )
            )
        return cls(section, priors, device=device, dtype=dtype)

    def bounds(self):
        return prior_box(self.priors)

    def sample(self, u):
        return sample_independent(self.priors, u)

    def simulate(self, params):
        p = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        return self._spectra(p[:, 0::2], p[:, 1::2])


class GaussianPeakLabels(_Peaks):
    """Which of L candidate peaks are present (multi-label)."""

    name: ClassVar[str] = "test_peak_labels"
    task: ClassVar[str] = "multilabel"
    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["positions"],
        "properties": {
            **AXIS,
            "positions": {"type": "array", "minItems": 1, "items": {"type": "number"}},
            "presence": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "amplitude": {**PRIOR, "default": {"low": 50, "high": 500}},
        },
    }

    def __init__(self, section, amplitude: Prior, *, device=None, dtype=None):
        self._setup(section, device, dtype)
        self.positions = np.asarray(section["positions"], dtype=np.float64)
        self.amplitude = amplitude
        self.presence = float(section["presence"])
        self.parameter_names = [f"amplitude@{p:g}" for p in self.positions]
        self.parameter_units = ["counts"] * len(self.positions)

    @classmethod
    def from_config(cls, section, *, device=None, dtype=None):
        amplitude = Prior.parse(section["amplitude"], None, "amplitude", minimum=0.0, what="counts")
        return cls(section, amplitude, device=device, dtype=dtype)

    @property
    def n_uniforms(self) -> int:
        return 2 * len(self.positions)  # presence, then amplitude, of every peak

    def sample(self, u):
        n = len(self.positions)
        present = u[:, :n] < self.presence
        return np.where(present, self.amplitude.transform(u[:, n:]), 0.0)

    def bounds(self):
        n = len(self.positions)
        return np.zeros(n), np.full(n, self.amplitude.high)

    @property
    def target_names(self):
        return [f"peak@{p:g}" for p in self.positions]

    def targets(self, params):
        return (np.asarray(params) > 0).astype(np.int8)

    def simulate(self, params):
        p = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        position = torch.as_tensor(self.positions, dtype=self.dtype, device=self.device).expand_as(
            p
        )
        return self._spectra(position, p)
