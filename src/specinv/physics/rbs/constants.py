"""Physical constants in the units of the RBS simulator.

Units used throughout ``specinv.physics.rbs``: energies in keV, areal densities in
1e15 atoms/cm² (TFU), stopping in keV/TFU, cross sections in mb/sr, angles in radians
inside functions (degrees in user-facing configuration).
"""

from __future__ import annotations

import math

from scipy import constants as _c

#: e²/(4πε0) in keV·cm (CODATA via scipy: 1.43996 MeV·fm).
E2_KEV_CM: float = _c.e**2 / (4.0 * math.pi * _c.epsilon_0) / (1e3 * _c.e) * 1e2

#: Bohr radius in cm.
BOHR_RADIUS_CM: float = _c.physical_constants["Bohr radius"][0] * 1e2

#: One TFU (1e15 atoms/cm²) in atoms/cm².
TFU: float = 1e15

#: One millibarn in cm².
MILLIBARN_CM2: float = 1e-27

#: Bohr energy-straggling variance per unit Z1²·Z2 and per TFU of path, in keV²:
#: Ω²_B = 4π (e²/4πε0)² Z1² Z2 N·t.  (≈ 2.6056e-4 keV², i.e. 260.56 eV².)
BOHR_STRAGGLING_KEV2_PER_TFU: float = 4.0 * math.pi * E2_KEV_CM**2 * TFU

#: FWHM of a Gaussian divided by its standard deviation.
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Andersen (1980) screening energy coefficient, keV: V1 = 0.04873 Z1 Z2 sqrt(Z1^(2/3) + Z2^(2/3)).
ANDERSEN_V1_KEV: float = 0.04873

#: L'Ecuyer (1979) screening coefficient, keV: F = 1 - 0.04873 Z1 Z2^(4/3) / E_cm.
LECUYER_KEV: float = 0.04873

#: Ziegler–Biersack–Littmark universal screening length prefactor:
#: a_U = 0.8854 a0 / (Z1^0.23 + Z2^0.23).
ZBL_SCREENING_PREFACTOR: float = 0.8854
