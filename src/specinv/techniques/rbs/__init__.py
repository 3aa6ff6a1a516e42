"""Rutherford backscattering (Muzakka et al. 2024): areal densities of the elements of every
layer.  The technique: :class:`RBSTechnique`."""

from .technique import RBSTechnique

__all__ = ["RBSTechnique"]
