"""Core-loss EELS spectra from tabulated atomic physics (no ML, no configuration files).

:mod:`.edges`: edge sets and their photoabsorption cross sections (xraydb's tables);
:mod:`.scattering`: the dipole conversion to energy-loss cross sections;
:mod:`.finestructure`: generic near-edge structure and white lines;
:mod:`.lowloss`: the low-loss spectrum and plural scattering;
:mod:`.spectrum`: the whole spectrum (:class:`EELSSimulator`).
"""

from .spectrum import CONDITIONS, EELSSimulator, SimulatorSettings

__all__ = ["CONDITIONS", "EELSSimulator", "SimulatorSettings"]
