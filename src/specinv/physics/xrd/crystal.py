"""Crystals, reflections, structure factors and X-ray susceptibilities.

A :class:`Crystal` is a lattice (a, b, c in Å; α, β, γ in degrees) and the atoms of its basis
(element or ion, fractional position, occupancy, optional isotropic displacement B in Å²),
expanded by the lattice centring (P, I, F, C).  It is read from a small YAML file
(:func:`load_crystal`; examples ship in ``crystals/``).

Scattering factors come from xraydb: f0(sin θ/λ) of Waasmaier & Kirfel (Acta Cryst. A51
(1995) 416) and the anomalous parts f′, f″ of Chantler at the photon energy.  Conventions:

* structure factor ``F_h = Σ_j occ_j (f0_j(s) + f′_j + i f″_j) exp(−B_j s²) exp(+2πi h·r_j)``
  with ``s = sin θ_B / λ = 1 / (2 d_h)`` (International Tables sign of the phase);
* ``F_0`` is the same sum at s = 0 (forward scattering);
* susceptibility ``χ_h = −r_e λ² F_h / (π V)``: absorption makes Im χ < 0 in this convention
  (f″ > 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import scipy.constants as sc
import xraydb

#: h c in eV·Å (photon energy E = HC_EV_A / λ).
HC_EV_A = sc.h * sc.c / sc.e * 1e10
#: classical electron radius in Å.
R_E_A = sc.physical_constants["classical electron radius"][0] * 1e10

#: translations of the lattice centrings (fractional coordinates).
CENTRING_TRANSLATIONS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "P": ((0.0, 0.0, 0.0),),
    "I": ((0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),
    "C": ((0.0, 0.0, 0.0), (0.5, 0.5, 0.0)),
    "F": ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)),
}

_ELEMENT = re.compile(r"^([A-Z][a-z]?)(\d*[+-])?$")


class CrystalError(ValueError):
    """A bad crystal description or reflection (the message names key, expected and actual)."""


@dataclass(frozen=True)
class Lattice:
    """Unit cell: edges in Å, angles in degrees."""

    a_A: float
    b_A: float
    c_A: float
    alpha_deg: float = 90.0
    beta_deg: float = 90.0
    gamma_deg: float = 90.0

    def __post_init__(self):
        for key in ("a_A", "b_A", "c_A"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise CrystalError(f"lattice.{key}: expected a length > 0 Å, got {value!r}")
        for key in ("alpha_deg", "beta_deg", "gamma_deg"):
            value = getattr(self, key)
            if not (math.isfinite(value) and 0 < value < 180):
                raise CrystalError(f"lattice.{key}: expected an angle in (0, 180)°, got {value!r}")
        if not self._volume_factor() > 0:
            raise CrystalError(
                f"lattice angles ({self.alpha_deg}, {self.beta_deg}, {self.gamma_deg})°: "
                "expected angles that close a cell, got a cell of zero or imaginary volume"
            )

    def _volume_factor(self) -> float:
        ca, cb, cg = (math.cos(math.radians(x)) for x in self.angles_deg)
        return 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg

    @property
    def angles_deg(self) -> tuple[float, float, float]:
        return (self.alpha_deg, self.beta_deg, self.gamma_deg)

    @property
    def volume_A3(self) -> float:
        """Cell volume in Å³."""
        return self.a_A * self.b_A * self.c_A * math.sqrt(self._volume_factor())

    def metric_tensor(self) -> np.ndarray:
        """Direct metric tensor G (Å²): G_ij = a_i · a_j."""
        edges = np.array([self.a_A, self.b_A, self.c_A])
        ca, cb, cg = (math.cos(math.radians(x)) for x in self.angles_deg)
        cosines = np.array([[1.0, cg, cb], [cg, 1.0, ca], [cb, ca, 1.0]])
        return cosines * np.outer(edges, edges)

    def d_spacing_A(self, hkl: Sequence[int]) -> float:
        """Interplanar spacing d_hkl in Å (1/d² = hᵀ G⁻¹ h)."""
        h = _check_hkl(hkl)
        inverse_d2 = float(h @ np.linalg.inv(self.metric_tensor()) @ h)
        return 1.0 / math.sqrt(inverse_d2)


@dataclass(frozen=True)
class Site:
    """One atom of the basis: element or ion as xraydb spells it ('Zr', 'O2-'), fractional
    position, occupancy in [0, 1] and isotropic displacement parameter B in Å²."""

    element: str
    position: tuple[float, float, float]
    occupancy: float = 1.0
    b_iso_A2: float = 0.0

    def __post_init__(self):
        match = _ELEMENT.match(self.element)
        if match is None:
            raise CrystalError(
                f"site element: expected a symbol such as 'Zr' or 'O2-', got {self.element!r}"
            )
        try:
            xraydb.atomic_number(match.group(1))
            xraydb.f0(self.element, 0.0)
        except ValueError:
            raise CrystalError(
                f"site element: expected an element or ion in xraydb's Waasmaier-Kirfel "
                f"table, got {self.element!r}"
            ) from None
        if len(self.position) != 3 or not all(math.isfinite(x) for x in self.position):
            raise CrystalError(
                f"site {self.element} position: expected 3 finite fractional coordinates, "
                f"got {self.position!r}"
            )
        if not (0.0 <= self.occupancy <= 1.0):
            raise CrystalError(
                f"site {self.element} occupancy: expected a value in [0, 1], got {self.occupancy!r}"
            )
        if not (math.isfinite(self.b_iso_A2) and self.b_iso_A2 >= 0):
            raise CrystalError(
                f"site {self.element} b_iso_A2: expected B >= 0 Å², got {self.b_iso_A2!r}"
            )

    @property
    def symbol(self) -> str:
        """The element symbol without charge ('O' for 'O2-'), for f′ and f″."""
        return _ELEMENT.match(self.element).group(1)


@dataclass(frozen=True)
class Crystal:
    """A named crystal: lattice and every atom of the unit cell (centring already applied)."""

    name: str
    lattice: Lattice
    sites: tuple[Site, ...]

    def __post_init__(self):
        if not self.sites:
            raise CrystalError(f"crystal {self.name!r} sites: expected at least one atom, got 0")


def expand_centring(sites: Sequence[Site], centring: str) -> tuple[Site, ...]:
    """Every atom of the cell: each basis site plus the centring translations (mod 1).

    Raises:
        CrystalError: for an unknown centring, or when two atoms of the same element land on
            the same position (a basis site listed together with its centred copy).
    """
    if centring not in CENTRING_TRANSLATIONS:
        raise CrystalError(
            f"centring: expected one of {sorted(CENTRING_TRANSLATIONS)}, got {centring!r}"
        )
    cell: list[Site] = []
    seen: set[tuple[str, tuple[int, int, int]]] = set()
    for site in sites:
        for shift in CENTRING_TRANSLATIONS[centring]:
            position = tuple(
                float((p + t) % 1.0) for p, t in zip(site.position, shift, strict=True)
            )
            key = (site.element, tuple(round(x * 1e6) % 1_000_000 for x in position))
            if key in seen:
                raise CrystalError(
                    f"site {site.element} at {site.position}: expected distinct positions after "
                    f"{centring} centring, got a duplicate at {position} (list only the basis)"
                )
            seen.add(key)
            cell.append(Site(site.element, position, site.occupancy, site.b_iso_A2))
    return tuple(cell)


def crystal_from_mapping(data: Mapping[str, Any], where: str = "crystal") -> Crystal:
    """A crystal from a mapping with keys ``name``, ``lattice`` (a, b, c in Å; alpha, beta,
    gamma in degrees, default 90), ``centring`` (P, I, F or C; default P) and ``sites`` (a
    list of ``{element, position: [x, y, z], occupancy (default 1), b_iso (Å², default 0)}``).
    """
    known = {"name", "lattice", "centring", "sites", "description"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CrystalError(f"{where}: unknown keys {unknown}; expected keys among {sorted(known)}")
    for key in ("name", "lattice", "sites"):
        if key not in data:
            raise CrystalError(f"{where}.{key}: missing; expected it")
    lat = data["lattice"]
    if not isinstance(lat, Mapping):
        raise CrystalError(f"{where}.lattice: expected a mapping, got {type(lat).__name__}")
    lattice_keys = {"a", "b", "c", "alpha", "beta", "gamma"}
    if set(lat) - lattice_keys or "a" not in lat:
        raise CrystalError(
            f"{where}.lattice: expected keys a (and b, c, alpha, beta, gamma), got {sorted(lat)}"
        )
    a = _number(lat["a"], f"{where}.lattice.a")
    try:
        lattice = Lattice(
            a,
            _number(lat.get("b", a), f"{where}.lattice.b"),
            _number(lat.get("c", a), f"{where}.lattice.c"),
            _number(lat.get("alpha", 90.0), f"{where}.lattice.alpha"),
            _number(lat.get("beta", 90.0), f"{where}.lattice.beta"),
            _number(lat.get("gamma", 90.0), f"{where}.lattice.gamma"),
        )
    except CrystalError as exc:
        raise CrystalError(f"{where}: {exc}") from None
    raw_sites = data["sites"]
    if not isinstance(raw_sites, list):
        raise CrystalError(f"{where}.sites: expected a list, got {type(raw_sites).__name__}")
    sites = []
    for i, entry in enumerate(raw_sites):
        key = f"{where}.sites[{i}]"
        if not isinstance(entry, Mapping) or set(entry) - {
            "element",
            "position",
            "occupancy",
            "b_iso",
        }:
            raise CrystalError(
                f"{key}: expected a mapping with element, position, occupancy, b_iso; got {entry!r}"
            )
        position = entry.get("position")
        if not isinstance(position, list) or len(position) != 3:
            raise CrystalError(f"{key}.position: expected [x, y, z], got {position!r}")
        try:
            site = Site(
                str(entry.get("element")),
                tuple(_number(x, f"{key}.position") for x in position),
                _number(entry.get("occupancy", 1.0), f"{key}.occupancy"),
                _number(entry.get("b_iso", 0.0), f"{key}.b_iso"),
            )
        except CrystalError as exc:
            raise CrystalError(f"{key}: {exc}") from None
        sites.append(site)
    centring = str(data.get("centring", "P"))
    try:
        cell = expand_centring(sites, centring)
    except CrystalError as exc:
        raise CrystalError(f"{where}: {exc}") from None
    return Crystal(str(data["name"]), lattice, cell)


def bundled_crystals() -> list[str]:
    """Names of the crystal files shipped with specinv (``load_crystal(name)`` reads them)."""
    folder = resources.files(__package__) / "crystals"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_crystal(name_or_path: str | Path) -> Crystal:
    """A crystal from a YAML file, or by name from the bundled files (e.g. ``"YSZ"``)."""
    from specinv.config.files import load_mapping_file

    path = Path(name_or_path)
    if not path.suffix:
        bundled = resources.files(__package__) / "crystals" / f"{name_or_path}.yaml"
        if not bundled.is_file():
            raise CrystalError(
                f"crystal {name_or_path!r}: expected a YAML file or one of "
                f"{bundled_crystals()}, got neither"
            )
        path = Path(str(bundled))
    data = load_mapping_file(path, what="crystal file")
    return crystal_from_mapping(data, where=str(path))


def photon_energy_eV(wavelength_A: float) -> float:
    """Photon energy in eV of the wavelength λ in Å."""
    if not (math.isfinite(wavelength_A) and wavelength_A > 0):
        raise CrystalError(f"wavelength_A: expected a wavelength > 0 Å, got {wavelength_A!r}")
    return HC_EV_A / wavelength_A


def bragg_angle_rad(lattice: Lattice, hkl: Sequence[int], wavelength_A: float) -> float:
    """Kinematic Bragg angle θ_B (radians) of reflection hkl: λ = 2 d sin θ_B."""
    d = lattice.d_spacing_A(hkl)
    ratio = wavelength_A / (2 * d)
    if not ratio < 1:
        raise CrystalError(
            f"reflection {tuple(hkl)}: expected λ < 2d for a Bragg angle, got λ = "
            f"{wavelength_A} Å and 2d = {2 * d:.6g} Å"
        )
    return math.asin(ratio)


def atomic_scattering_factor(site: Site, s_inv_A: float, energy_eV: float) -> complex:
    """f = f0(s) + f′(E) + i f″(E) times exp(−B s²), for s = sin θ / λ in Å⁻¹."""
    f0 = float(np.asarray(xraydb.f0(site.element, s_inv_A)).reshape(-1)[0])
    f1 = float(xraydb.f1_chantler(site.symbol, energy_eV))
    f2 = float(xraydb.f2_chantler(site.symbol, energy_eV))
    return (f0 + f1 + 1j * f2) * math.exp(-site.b_iso_A2 * s_inv_A * s_inv_A)


def structure_factor(crystal: Crystal, hkl: Sequence[int], wavelength_A: float) -> complex:
    """F_hkl (electrons per cell) at the photon energy of λ; hkl = (0, 0, 0) gives F_0."""
    h = _check_hkl(hkl, allow_zero=True)
    energy = photon_energy_eV(wavelength_A)
    s = 0.0 if not h.any() else 1.0 / (2.0 * crystal.lattice.d_spacing_A(h))
    total = 0j
    for site in crystal.sites:
        phase = 2 * math.pi * float(h @ np.asarray(site.position))
        total += (
            site.occupancy
            * atomic_scattering_factor(site, s, energy)
            * complex(math.cos(phase), math.sin(phase))
        )
    return total


@dataclass(frozen=True)
class Reflection:
    """Everything the dynamical theory needs of one reflection at one wavelength.

    Angles in radians, lengths in Å; structure factors in electrons per cell; χ dimensionless
    (Im χ < 0 for absorption, see the module docstring)."""

    crystal_name: str
    hkl: tuple[int, int, int]
    wavelength_A: float
    d_spacing_A: float
    bragg_angle_rad: float
    volume_A3: float
    f_0: complex
    f_h: complex
    f_hbar: complex
    chi_0: complex
    chi_h: complex
    chi_hbar: complex

    @property
    def two_theta_bragg_deg(self) -> float:
        return math.degrees(2 * self.bragg_angle_rad)

    @property
    def darwin_width_rad(self) -> float:
        """Full width 2|χ_h|/sin 2θ_B (σ polarisation) of the total-reflection plateau of a
        symmetric Bragg reflection of a non-absorbing crystal."""
        return 2 * math.sqrt(abs(self.chi_h * self.chi_hbar)) / math.sin(2 * self.bragg_angle_rad)


def susceptibility(f: complex, wavelength_A: float, volume_A3: float) -> complex:
    """χ = −r_e λ² F / (π V)."""
    return -R_E_A * wavelength_A**2 * f / (math.pi * volume_A3)


def reflection(crystal: Crystal, hkl: Sequence[int], wavelength_A: float) -> Reflection:
    """The reflection hkl of ``crystal`` at wavelength λ (Å): θ_B, F_0, F_h, F_h̄, χ's."""
    h = tuple(int(x) for x in _check_hkl(hkl))
    theta_b = bragg_angle_rad(crystal.lattice, h, wavelength_A)
    volume = crystal.lattice.volume_A3
    f_0 = structure_factor(crystal, (0, 0, 0), wavelength_A)
    f_h = structure_factor(crystal, h, wavelength_A)
    f_hbar = structure_factor(crystal, tuple(-x for x in h), wavelength_A)
    if abs(f_h * f_hbar) < 1e-9 * abs(f_0) ** 2:
        raise CrystalError(
            f"reflection {h} of {crystal.name}: expected an allowed reflection, got "
            f"|F_h| = {abs(f_h):.3g} (forbidden)"
        )
    return Reflection(
        crystal_name=crystal.name,
        hkl=h,
        wavelength_A=float(wavelength_A),
        d_spacing_A=crystal.lattice.d_spacing_A(h),
        bragg_angle_rad=theta_b,
        volume_A3=volume,
        f_0=f_0,
        f_h=f_h,
        f_hbar=f_hbar,
        chi_0=susceptibility(f_0, wavelength_A, volume),
        chi_h=susceptibility(f_h, wavelength_A, volume),
        chi_hbar=susceptibility(f_hbar, wavelength_A, volume),
    )


def _check_hkl(hkl: Sequence[int], allow_zero: bool = False) -> np.ndarray:
    values = np.asarray(hkl)
    if values.shape != (3,) or not np.all(np.equal(np.mod(values, 1), 0)):
        raise CrystalError(f"hkl: expected three integers, got {hkl!r}")
    values = values.astype(float)
    if not allow_zero and not values.any():
        raise CrystalError("hkl: expected a reflection other than (0, 0, 0), got (0, 0, 0)")
    return values


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CrystalError(f"{key}: expected a number, got {value!r}")
    return float(value)
