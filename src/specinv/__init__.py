"""specinv: neural inverse models and classical fitting for materials-analysis spectra."""

__version__ = "0.1.0"
