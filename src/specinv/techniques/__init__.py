"""Techniques: each is a plug-in with one interface (:class:`.base.Technique`).

:data:`TECHNIQUES` is the registry, the only place that names every technique; a technique
of another package registers itself under the entry-point group ``specinv.techniques``
(``name = "package.module:Class"``).  Data generation, preprocessing, training, evaluation,
fitting and the workflow reach a technique only through :func:`technique_class`.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from ..config.errors import ConfigError
from .base import TASKS, Axis, PartialSimulation, Technique

#: name -> "module:Class" of the built-in techniques (imported on first use).
TECHNIQUES = {
    "rbs": "specinv.techniques.rbs:RBSTechnique",
    "xrd": "specinv.techniques.xrd:XRDTechnique",
    "eels": "specinv.techniques.eels:EELSTechnique",
}

ENTRY_POINT_GROUP = "specinv.techniques"


@cache
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of every technique: built-in and registered plug-ins."""
    return sorted({*TECHNIQUES, *_plugins()})


def technique_class(name: str) -> type[Technique]:
    """The class registered as ``name``.

    Raises:
        ConfigError: for an unknown name (listing the known ones), or a registration that
            does not name a :class:`Technique` subclass.
    """
    target = TECHNIQUES.get(name) or _plugins().get(name)
    if target is None:
        raise ConfigError(f"technique: expected one of {', '.join(available())}, got {name!r}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"technique {name!r}: cannot load {target} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Technique)):
        raise ConfigError(f"technique {name!r}: {target} is not a specinv Technique")
    if cls.name != name or cls.task not in TASKS:
        raise ConfigError(
            f"technique {name!r}: {target} declares name {cls.name!r} and task "
            f"{cls.task!r} (expected {name!r} and one of {', '.join(TASKS)})"
        )
    return cls


__all__ = [
    "TASKS",
    "TECHNIQUES",
    "Axis",
    "PartialSimulation",
    "Technique",
    "available",
    "technique_class",
]
