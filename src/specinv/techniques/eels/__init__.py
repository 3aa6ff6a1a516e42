"""Core-loss EELS (Annys, Jannis & Verbeeck 2023): which elements a spectrum shows.  The
technique: :class:`EELSTechnique`; the forward model: :mod:`specinv.physics.eels`."""

from .technique import EELSTechnique

__all__ = ["EELSTechnique"]
