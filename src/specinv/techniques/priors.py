"""Independent one-dimensional priors of parameters: uniform, log-uniform or fixed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.errors import ConfigError

LAWS = ("uniform", "loguniform", "fixed")


@dataclass(frozen=True)
class Prior:
    """Sampling law of one parameter: ``uniform`` or ``loguniform`` on [low, high], or
    ``fixed`` at ``low``."""

    law: str
    low: float
    high: float

    def transform(self, u: np.ndarray) -> np.ndarray:
        """Values of uniform [0, 1) numbers ``u`` under this law (inverse CDF)."""
        if self.law == "uniform":
            return self.low + (self.high - self.low) * u
        if self.law == "loguniform":
            return np.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u)
        return np.full_like(u, self.low)

    def to_dict(self) -> dict[str, Any]:
        return {"law": self.law, "low": self.low, "high": self.high}

    @classmethod
    def parse(
        cls,
        spec: Any,
        default: Prior | None,
        key: str,
        *,
        minimum: float | None = None,
        what: str = "",
    ) -> Prior:
        """A prior from its configuration ``{law, low, high}`` (missing keys from
        ``default``; None is ``default``).  ``minimum``: the smallest allowed bound (e.g. 0
        for an areal density, named ``what``)."""
        if spec is None:
            if default is None:
                raise ConfigError(f"{key}: expected a prior {{law, low, high}}, got null")
            return default
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key}: expected a prior {{law, low, high}} or null, got {spec!r}")
        law = spec.get("law", default.law if default else "uniform")
        if law not in LAWS:
            raise ConfigError(f"{key}.law: expected one of {', '.join(LAWS)}, got {law!r}")
        low = spec.get("low", default.low if default else None)
        high = spec.get("high", low if law == "fixed" else (default.high if default else None))
        for name, value in (("low", low), ("high", high)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value))
            ):
                raise ConfigError(f"{key}.{name}: expected a finite number, got {value!r}")
            if minimum is not None and value < minimum:
                raise ConfigError(
                    f"{key}.{name}: expected >= {minimum:g}"
                    f"{f' ({what})' if what else ''}, got {value}"
                )
        if low > high:
            raise ConfigError(f"{key}: lower bound low={low} is above the upper bound high={high}")
        if law == "loguniform" and low <= 0:
            raise ConfigError(f"{key}.low: a loguniform prior needs low > 0, got {low}")
        return cls(law=law, low=float(low), high=float(high))


def sample_independent(priors, u: np.ndarray) -> np.ndarray:
    """Parameters [n, D] of independent priors from uniform numbers ``u`` [n, D]."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != len(priors):
        raise ValueError(f"u: expected shape [n, {len(priors)}], got {u.shape}")
    return np.stack([p.transform(u[:, d]) for d, p in enumerate(priors)], 1)


def prior_box(priors) -> tuple[np.ndarray, np.ndarray]:
    """(low [D], high [D]) of independent priors."""
    return (
        np.array([p.low for p in priors], dtype=np.float64),
        np.array([p.high for p in priors], dtype=np.float64),
    )
