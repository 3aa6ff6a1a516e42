"""Pieces shared by the multi-label networks (U-Net, ViT, VGG): the MLP head and the checks
of their configuration fields (ValueErrors naming ``model.<field>``, expected and actual)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from torch import nn


def mlp_head(width: int, hidden: Sequence[int], n_outputs: int, dropout: float) -> nn.Sequential:
    """Flattened features [B, width] -> outputs [B, n_outputs]: a dense layer and a ReLU per
    ``hidden`` size, then a dense layer to the outputs; dropout (if > 0) before every dense
    layer."""
    layers: list[nn.Module] = []
    for i, h in enumerate((*hidden, n_outputs)):
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, h))
        if i < len(hidden):
            layers.append(nn.ReLU())
        width = h
    return nn.Sequential(*layers)


def check_sizes(cfg, *names: str, minimum: int = 1) -> None:
    """Every named integer field of ``cfg`` is an int >= ``minimum``."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"model.{name}: expected an integer >= {minimum}, got {value!r}")


def check_sequence(cfg, name: str, allow_empty: bool = True) -> None:
    """The named field is a sequence of positive integers; stored as a tuple (frozen)."""
    value = getattr(cfg, name)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"model.{name}: expected a list of positive integers, got {value!r}")
    if not allow_empty and not value:
        raise ValueError(f"model.{name}: expected a non-empty list, got {list(value)!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value):
        raise ValueError(f"model.{name}: expected positive integers, got {list(value)!r}")
    object.__setattr__(cfg, name, tuple(int(v) for v in value))


def check_dropout(cfg) -> None:
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"model.dropout: expected a value in [0, 1), got {cfg.dropout!r}")


__all__ = ["check_dropout", "check_sequence", "check_sizes", "mlp_head"]
