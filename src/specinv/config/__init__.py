"""Workflow configurations: validation against the schemas (the one source of defaults),
one exception type, and canonical forms of configuration parts.

A configuration has the generic sections of ``workflow.schema.yaml`` (beside this file) and
one section named after its technique (``rbs: {...}``), validated by the technique's own
schema fragment (:attr:`specinv.techniques.Technique.config_schema`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, MutableMapping
from typing import Any

from .errors import ConfigError
from .files import check_tree, load_mapping_file
from .schema import load_schema, validate

#: Top-level keys of the generic schema.
GENERIC_SECTIONS = (
    "name",
    "technique",
    "data",
    "preprocessing",
    "model",
    "training",
    "fitting",
    "evaluation",
    "example",
    "measured",
)

#: Keys of earlier versions, with where they went.
_MOVED = {"experiment": "{technique}.experiment", "sample": "{technique}.sample"}


def workflow_schema() -> dict:
    """The generic schema (a fresh copy)."""
    return load_schema(__package__, "workflow.schema.yaml")


def schema_default(section: str, key: str) -> Any:
    """The default of ``section.key`` in the generic schema (for the library's dataclasses,
    so that the schema stays the only place a default is written)."""
    props = workflow_schema()["properties"][section]["properties"]
    if key not in props or "default" not in props[key]:
        raise KeyError(f"workflow schema: {section}.{key} has no default")
    return copy.deepcopy(props[key]["default"])


def validate_config(config: Mapping[str, Any], *, in_place: bool = False) -> dict:
    """Check a workflow configuration against the generic schema and its technique's
    schema fragment, filling in every default.

    Args:
        config: the configuration (as read from YAML, possibly merged).
        in_place: fill the defaults into ``config`` itself (it must be a mutable mapping;
            Snakemake's ``config``) instead of a copy.

    Returns:
        The validated configuration with defaults.

    Raises:
        ConfigError: naming the first bad key, what was expected and what was found.
    """
    from ..techniques import technique_class

    if not isinstance(config, Mapping):
        raise ConfigError(f"config: expected a mapping of sections, got {config!r:.200}")
    check_tree(config)  # before anything walks it: no alias bombs, no deep nesting
    out: MutableMapping = config if in_place else copy.deepcopy(dict(config))
    name = out.get("technique")
    if isinstance(name, str):
        for old, new in _MOVED.items():
            if old in out:
                raise ConfigError(
                    f"{old}: this section is now part of the technique's section "
                    f"({new.format(technique=name)}); move it there"
                )
    validate(out, workflow_schema())
    cls = technique_class(out["technique"])
    unknown = sorted(set(out) - {*GENERIC_SECTIONS, cls.name})
    if unknown:
        raise ConfigError(
            f"config: unknown key(s) {', '.join(map(repr, unknown))} (expected "
            f"{', '.join(GENERIC_SECTIONS)} and the technique's section "
            f"{cls.name!r})"
        )
    if cls.name not in out:
        raise ConfigError(f"{cls.name}: the section of technique {cls.name!r} is missing")
    validate(out[cls.name], cls.config_schema, where=cls.name)
    noise = out["data"]["noise"]
    if noise != "none" and noise not in cls.noise_models:
        raise ConfigError(
            f"data.noise: expected one of {', '.join((*cls.noise_models, 'none'))}"
            f" for technique {cls.name!r}, got {noise!r}"
        )
    return out


def canonical(value: Any) -> str:
    """A canonical text of a configuration part: JSON with sorted keys, so that equal
    settings give equal text whatever the order of their keys (Snakemake compares rule
    parameters by their text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


__all__ = [
    "GENERIC_SECTIONS",
    "ConfigError",
    "canonical",
    "check_tree",
    "load_mapping_file",
    "schema_default",
    "validate",
    "validate_config",
    "workflow_schema",
]
