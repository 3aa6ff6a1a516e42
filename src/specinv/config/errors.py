"""The one exception type of bad configuration values."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad value in a workflow configuration; the message names the key (as a dotted path,
    e.g. ``rbs.sample.layers[0].W.low``), what was expected and what was found."""
