"""X-ray diffraction (XRD) forward model: strain and Debye–Waller depth profiles of an
ion-irradiated crystal -> symmetric Bragg θ–2θ curve (dynamical theory, recursive
Takagi–Taupin solution), after Boulle & Debelle (2023) and RaDMaX."""

from .crystal import (
    Crystal,
    CrystalError,
    Lattice,
    Reflection,
    Site,
    bundled_crystals,
    crystal_from_mapping,
    load_crystal,
    reflection,
    structure_factor,
)
from .instrument import convolve_same, instrument_kernel, pseudo_voigt, scale_and_background
from .kinematic import kinematic_amplitude
from .profiles import (
    ProfileError,
    SliceBasis,
    bspline_design_matrix,
    dw_from_strain,
    dw_spline,
    slice_basis,
    strain_profile,
)
from .simulator import (
    ANGLE_AXES,
    SliceProfiles,
    XRDParameters,
    XRDSetup,
    XRDSetupError,
    XRDSimulator,
    convert_axis,
)
from .takagi_taupin import propagate_slice, recursive_amplitude, substrate_amplitude

__all__ = [
    "ANGLE_AXES",
    "convert_axis",
    "Crystal",
    "CrystalError",
    "Lattice",
    "ProfileError",
    "Reflection",
    "Site",
    "SliceBasis",
    "SliceProfiles",
    "XRDParameters",
    "XRDSetup",
    "XRDSetupError",
    "XRDSimulator",
    "bspline_design_matrix",
    "bundled_crystals",
    "convolve_same",
    "crystal_from_mapping",
    "dw_from_strain",
    "dw_spline",
    "instrument_kernel",
    "kinematic_amplitude",
    "load_crystal",
    "propagate_slice",
    "pseudo_voigt",
    "recursive_amplitude",
    "reflection",
    "scale_and_background",
    "slice_basis",
    "strain_profile",
    "structure_factor",
    "substrate_amplitude",
]
