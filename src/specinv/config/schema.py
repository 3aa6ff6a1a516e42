"""JSON-schema validation of configurations that also fills in the schema's defaults.

The schema is the one source of defaults: a key missing from a configuration gets the
``default`` of its schema entry (recursively, so a missing section with ``default: {}``
gets its own keys' defaults too).  Where the schema expects a number, a string that spells
one (``"1.7e11"``: YAML 1.1 readers such as Snakemake's leave exponents without a dot as
strings) is replaced by the number.  Errors name the key as a dotted path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, MutableSequence
from functools import cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError
from .files import as_number


def _wants_number(schema: Any) -> bool:
    """Whether a (sub)schema's own ``type`` admits numbers."""
    if not isinstance(schema, Mapping):
        return False
    kinds = schema.get("type", ())
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return "number" in kinds or "integer" in kinds


def _with_defaults(validator_class):
    """A validator that fills in defaults and reads number strings as numbers."""
    properties = validator_class.VALIDATORS["properties"]
    items = validator_class.VALIDATORS["items"]

    def set_defaults(validator, props, instance, schema):
        if isinstance(instance, MutableMapping):
            for key, sub in props.items():
                if isinstance(sub, Mapping) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
                elif key in instance and _wants_number(sub):
                    # YAML 1.1 (Snakemake's reader) leaves 1.7e11 and 1e-3 as strings
                    instance[key] = as_number(instance[key])
        yield from properties(validator, props, instance, schema)

    def numbers_in_items(validator, sub, instance, schema):
        if isinstance(instance, MutableSequence) and _wants_number(sub):
            instance[:] = [as_number(v) for v in instance]
        yield from items(validator, sub, instance, schema)

    return validators.extend(
        validator_class, {"properties": set_defaults, "items": numbers_in_items}
    )


_DefaultingValidator = _with_defaults(Draft202012Validator)


def key_path(path) -> str:
    """``["rbs", "sample", "layers", 0, "W"]`` -> ``rbs.sample.layers[0].W``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def validate(instance: MutableMapping, schema: Mapping[str, Any], where: str = "") -> None:
    """Validate ``instance`` against ``schema`` in place, filling in defaults.

    Raises:
        ConfigError: for the first violation, naming its key (prefixed by ``where``).
    """
    Draft202012Validator.check_schema(schema)
    errors = sorted(
        _DefaultingValidator(schema).iter_errors(instance),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        error = errors[0]
        path = key_path([*(p for p in where.split(".") if p), *error.absolute_path])
        raise ConfigError(f"{path}: {_explain(error)}")


def _explain(error) -> str:
    """A short message: what was expected, what was found."""
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (
            f"unknown key(s) {', '.join(map(repr, extra))} (expected one of: {', '.join(allowed)})"
        )
    if v == "required":
        return error.message.replace("is a required property", "is required but missing")
    if v == "enum":
        return (
            f"expected one of {', '.join(map(str, error.validator_value))}, got {error.instance!r}"
        )
    if v == "type":
        return f"expected {error.validator_value}, got {error.instance!r}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return f"expected a value {op} {error.validator_value}, got {error.instance!r}"
    if v == "pattern":
        return f"expected text matching {error.validator_value}, got {error.instance!r}"
    return f"{error.message} (got {error.instance!r:.200})"


@cache
def _load(package: str, name: str) -> dict:
    return yaml.safe_load(resources.files(package).joinpath(name).read_text())


def load_schema(package: str, name: str) -> dict:
    """A YAML schema shipped inside a package (a fresh copy each call)."""
    return copy.deepcopy(_load(package, name))
