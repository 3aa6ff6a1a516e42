"""Rutherford backscattering (Muzakka et al. 2024): areal densities of the elements of every
layer.  The technique: :class:`RBSTechnique`; measured spectra: :func:`read_spectrum`
(IDF/xnra XML, columns of numbers) and :func:`experiment_mapping` (module ``measured``)."""

from .measured import MeasuredFileError, MeasuredSpectrum, experiment_mapping, read_spectrum
from .technique import RBSTechnique

__all__ = [
    "MeasuredFileError",
    "MeasuredSpectrum",
    "RBSTechnique",
    "experiment_mapping",
    "read_spectrum",
]
