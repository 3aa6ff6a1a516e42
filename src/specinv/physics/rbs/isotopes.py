"""Elements, isotopes, masses and natural abundances (from ``periodictable``).

Names accepted for a target constituent or an ion:

* an element symbol, ``"W"``, ``"Si"``: the natural isotopic mixture (as a target) or the
  most abundant isotope (as an ion);
* an isotope as mass number + symbol, ``"13C"``, ``"4He"``, or symbol-dash-mass, ``"C-13"``;
* ``"D"`` for ²H and ``"T"`` for ³H.

Masses are atomic masses in u (AME, as shipped by periodictable); abundances are atom
fractions normalised to 1 over the isotopes periodictable lists as occurring in nature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import periodictable

_ISOTOPE_PREFIX = re.compile(r"^(\d+)([A-Za-z]{1,2})$")
_ISOTOPE_SUFFIX = re.compile(r"^([A-Za-z]{1,2})-?(\d+)$")
_SPECIAL = {"D": ("H", 2), "T": ("H", 3)}


class UnknownSpeciesError(ValueError):
    """Raised for a name that is not an element or a known isotope."""


@dataclass(frozen=True)
class Isotope:
    """One isotope: atomic number, mass number, atomic mass (u) and abundance (fraction)."""

    Z: int
    A: int
    mass_u: float
    abundance: float
    symbol: str

    @property
    def label(self) -> str:
        return f"{self.A}{self.symbol}"


@dataclass(frozen=True)
class Species:
    """An element with an isotopic composition (natural or a single enriched isotope)."""

    name: str
    Z: int
    symbol: str
    isotopes: tuple[Isotope, ...]

    @property
    def mean_mass_u(self) -> float:
        return sum(i.mass_u * i.abundance for i in self.isotopes)


def _element(symbol: str, context: str):
    try:
        el = periodictable.elements.symbol(symbol)
    except ValueError:
        el = None
    if el is None or el.number == 0:
        raise UnknownSpeciesError(f"{context}: unknown element {symbol!r}")
    return el


def _isotope(el, mass_number: int, context: str, name: str) -> Isotope:
    if mass_number not in el.isotopes:
        known = ", ".join(f"{a}{el.symbol}" for a in el.isotopes[:8])
        raise UnknownSpeciesError(
            f"{context}: unknown isotope {name!r} (periodictable knows e.g. {known} ...)"
        )
    iso = el[mass_number]
    return Isotope(
        Z=el.number, A=mass_number, mass_u=float(iso.mass), abundance=1.0, symbol=el.symbol
    )


def _split_name(name: str) -> tuple[str, int | None]:
    """(element symbol, mass number or None) of a species name."""
    text = name.strip()
    if text in _SPECIAL:
        return _SPECIAL[text]
    m = _ISOTOPE_PREFIX.match(text)
    if m:
        return m.group(2).capitalize(), int(m.group(1))
    m = _ISOTOPE_SUFFIX.match(text)
    if m:
        return m.group(1).capitalize(), int(m.group(2))
    return text, None


@lru_cache(maxsize=512)
def species(name: str, context: str = "species") -> Species:
    """Resolve a target constituent: a natural element or one isotope.

    Raises:
        UnknownSpeciesError: naming ``context`` and the offending name.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownSpeciesError(f"{context}: expected an element or isotope name, got {name!r}")
    symbol, mass_number = _split_name(name)
    el = _element(symbol, context)
    if mass_number is not None:
        iso = _isotope(el, mass_number, context, name)
        return Species(name=name.strip(), Z=el.number, symbol=el.symbol, isotopes=(iso,))
    natural = [(a, el[a]) for a in el.isotopes if el[a].abundance and el[a].abundance > 0]
    if not natural:
        raise UnknownSpeciesError(
            f"{context}: element {symbol!r} has no natural isotopes; give an isotope, e.g. "
            f"'{el.isotopes[0]}{el.symbol}'"
        )
    total = sum(iso.abundance for _, iso in natural)
    isotopes = tuple(
        Isotope(
            Z=el.number,
            A=a,
            mass_u=float(iso.mass),
            abundance=float(iso.abundance) / total,
            symbol=el.symbol,
        )
        for a, iso in natural
    )
    return Species(name=el.symbol, Z=el.number, symbol=el.symbol, isotopes=isotopes)


@lru_cache(maxsize=64)
def ion(name: str, context: str = "ion") -> Isotope:
    """Resolve a projectile: an isotope name, or an element (its most abundant isotope)."""
    sp = species(name, context)
    if len(sp.isotopes) == 1:
        return sp.isotopes[0]
    best = max(sp.isotopes, key=lambda i: i.abundance)
    return Isotope(Z=best.Z, A=best.A, mass_u=best.mass_u, abundance=1.0, symbol=best.symbol)
