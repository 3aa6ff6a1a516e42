"""The settings of training: config sections ``training`` and ``model`` (no Lightning
import, so that planning a workflow stays light)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import ConfigError, schema_default
from ..models import model_spec


def _default(key: str):
    return field(default_factory=lambda: schema_default("training", key))


@dataclass(frozen=True)
class TrainingSettings:
    """Config section ``training`` (defaults: those of the workflow schema, which follow the
    paper where it says)."""

    learning_rates: Sequence[float] = _default("learning_rates")
    epochs: int = _default("epochs")
    patience: int = _default("patience")
    batch_size: int = _default("batch_size")
    weight_decay: float = _default("weight_decay")
    seed: int = _default("seed")
    accelerator: str = _default("accelerator")
    progress_bar: bool = _default("progress_bar")
    sizes: Sequence[int] = _default("sizes")
    #: draw the training spectra's noise afresh every epoch (beyond the paper)
    resample_noise: bool = _default("resample_noise")
    #: decay per optimizer step of an exponential moving average of the weights, which is
    #: then what is validated, checkpointed and passed to the next stage (0: off, the paper)
    ema_decay: float = _default("ema_decay")
    #: networks trained per training-set size (seeds seed, seed + 1, …), whose predictions
    #: are pooled (a deep ensemble; 1: a single network, the paper)
    ensemble: int = _default("ensemble")

    @property
    def epochs_per_stage(self) -> int:
        """Epochs of every stage (``epochs`` is a multiple of the number of stages)."""
        return max(1, self.epochs // len(self.learning_rates))

    def member(self, index: int) -> TrainingSettings:
        """The settings of the ensemble's network ``index`` (0 … ensemble − 1): its seed is
        ``seed + index``."""
        if not 0 <= index < self.ensemble:
            raise ValueError(f"ensemble member {index}: expected 0 … {self.ensemble - 1}")
        return replace(self, seed=self.seed + index)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TrainingSettings:
        t = dict(config.get("training", {}))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(t) - known)
        if unknown:
            raise ConfigError(f"training: unknown key(s) {', '.join(unknown)}")
        settings = cls(**t)
        if not settings.learning_rates or any(lr <= 0 for lr in settings.learning_rates):
            raise ConfigError("training.learning_rates: expected a non-empty list of rates > 0")
        for name in ("epochs", "patience", "batch_size", "ensemble"):
            if getattr(settings, name) < 1:
                raise ConfigError(f"training.{name}: expected >= 1, got {getattr(settings, name)}")
        stages = len(settings.learning_rates)
        if settings.epochs % stages:
            low = max(stages, settings.epochs - settings.epochs % stages)
            raise ConfigError(
                f"training.epochs: {settings.epochs} epochs cannot be split evenly over the "
                f"{stages} stages of training.learning_rates; expected a multiple of {stages} "
                f"(e.g. {low} or {low + stages})"
            )
        if not 0.0 <= settings.ema_decay < 1.0:
            raise ConfigError(
                f"training.ema_decay: expected 0 (off) or a decay in (0, 1), got "
                f"{settings.ema_decay}"
            )
        return settings


def model_settings(config: Mapping[str, Any], task: str = "regression") -> dict:
    """Config section ``model`` for a technique's ``task``: ``{"kind": ..., "architecture":
    {...}}`` (:func:`specinv.models.model_spec`); of a mixed ensemble (``model.members``),
    that of its first member."""
    return member_model_settings(config, task)[0]


def member_model_settings(config: Mapping[str, Any], task: str = "regression") -> list[dict]:
    """The model spec of every member of the ensemble: ``model.members[k]`` for a mixed
    ensemble (e.g. 2 ViTs and 3 U-Nets), else ``training.ensemble`` copies of ``model``.
    Raises ConfigError naming the key (``model.members[2].kind``)."""
    from ..config import ConfigError

    section = dict(config.get("model", {}) or {})
    members = section.pop("members", None)
    ensemble = int((config.get("training") or {}).get("ensemble", 1) or 1)
    if not members:
        return [model_spec(section, task)] * ensemble
    others = sorted(k for k, v in section.items() if v is not None)
    if others:
        raise ConfigError(
            f"model: expected either members (a mixed ensemble, each member with its own "
            f"kind, architecture and overrides) or {', '.join(others)}, got both"
        )
    if ensemble not in (1, len(members)):
        raise ConfigError(
            f"training.ensemble: model.members lists {len(members)} networks; expected 1 "
            f"(the default) or {len(members)}, got {ensemble}"
        )
    specs = []
    for k, member in enumerate(members):
        try:
            specs.append(model_spec(dict(member), task))
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("model", f"model.members[{k}]", 1)) from None
    return specs
