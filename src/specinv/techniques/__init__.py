"""Techniques: each is a plug-in with one small interface (:class:`.base.Technique`).

The data pipeline, training, evaluation and fitting are written against that interface;
:func:`build_technique` makes one from the ``technique`` and ``experiment`` sections of a
workflow configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Technique


def build_technique(name: str, experiment: Mapping[str, Any], structure, *, device=None,
                    dtype=None) -> Technique:
    """The technique ``name`` ("rbs") for an experiment section and a sample structure."""
    if name == "rbs":
        from .rbs import RBSTechnique

        return RBSTechnique.from_config(experiment, structure, device=device, dtype=dtype)
    raise ValueError(f"technique: expected one of rbs, got {name!r}")


__all__ = ["Technique", "build_technique"]
