"""Measured RBS spectra: readers that turn a spectrum file into a typed, validated
:class:`MeasuredSpectrum`, and :func:`experiment_mapping`, the experiment description that
:func:`~specinv.physics.rbs.experiment.experiment_from_dict` accepts for it.

Formats (:func:`read_spectrum` decides from the content, not the file name):

* **IBA data format (IDF)**, XML with root ``<idf>`` in the namespace
  ``http://idf.schemas.itn.pt`` (pyIBA, NDF, ...), and SIMNRA's ``.xnra`` (IDF with extra
  elements in ``http://www.simnra.com/simnra``).  Read: beam (particle, energy, energy
  spread, fluence or charge), geometry (type, incidence, scattering and exit angle), solid
  angle, energy calibration, detector resolution, the data (``<simpledata>`` x and y) and
  the sample's layers (thickness, roughness, elements or compounds with concentrations).
  A layer element may be a compound (``SiO2``, ``Co50Pt50``, ``Si 1 O 2``): its
  concentration is the fraction of the layer's atoms that belong to it, normalised over
  the layer (so percentages work), and its atoms divide among its elements as in the
  formula (:func:`layer_areal_densities`).  An ``.xnra`` without measured counts gives
  SIMNRA's simulated spectrum (``simulated=True``).  DTDs with entities and external
  references are refused (the file is parsed with :mod:`defusedxml`).
* **Columns of numbers**: two columns (channel or energy in keV, counts), one column (counts
  of channels 0, 1, ...), or the CSV that ``specinv rbs simulate`` writes (header
  ``channel,energy_keV,counts[,expected_counts]``).  Numbers are separated by white space, a
  comma or a semicolon; lines starting with ``#``, ``!`` or ``%`` (and the rest of a line
  after ``#``) are comments; lines of names before the first line of numbers are a header.
  A first column of consecutive whole numbers holds channel numbers, anything else
  energies in keV (a header name containing "channel" or "energy" decides instead).

Units: energies in keV (MeV and eV are converted), angles in degrees (other angle units
are refused), solid angle in msr (sr converted), areal densities in 1e15 atoms/cm² (TFU),
charge in µC, fluence in particles.  Widths given as σ (``mode="sigma"``) become FWHM.

Every problem is a one-line :class:`MeasuredFileError` that starts with the file's path
and says what was found and what was expected.  Every assumption made while reading (an
exit angle not stated, counts that are not whole numbers, concentrations that sum to 100,
...) is recorded in :attr:`MeasuredSpectrum.notes`.

Exit angle: an IDF file need not state the exit angle β.  For IBM geometry it then depends
on which way the sample is tilted: towards the detector, β = |180° − θ − α| (the
simulator's rule), or away from it, β = 180° − θ + α.  :meth:`MeasuredSpectrum.exit_angle_deg`
and :func:`experiment_mapping` take ``tilt="towards"`` or ``"away"``; the note says which
was assumed.  Cornell geometry: cos β = −cos θ cos α.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ...physics.rbs.constants import FWHM_PER_SIGMA
from ...physics.rbs.experiment import ExperimentError, beam_ion, experiment_from_dict
from ...physics.rbs.isotopes import UnknownSpeciesError, species

#: Largest file read (measured spectra are kB to a few MB).
MAX_FILE_BYTES = 200 * 2**20
#: Which way an IBM sample is tilted when the file states no exit angle.
TILTS = ("towards", "away")
IDF_NAMESPACE = "http://idf.schemas.itn.pt"
SIMNRA_NAMESPACE = "http://www.simnra.com/simnra"
#: Elementary charge (C), to turn a collected charge into a number of particles.
ELEMENTARY_CHARGE_C = 1.602176634e-19


class MeasuredFileError(ValueError):
    """A file that cannot be read as a measured spectrum, or that lacks what is needed; the
    message is one line that starts with the file's path and says what was found and what
    was expected."""


def _error(path: str | Path, message: str) -> MeasuredFileError:
    return MeasuredFileError(f"{path}: {message}")


# ---------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class Calibration:
    """Energy calibration E(χ) = offset + gain·χ + quadratic·χ² (keV) at channel
    coordinate χ (channel i spans χ ∈ [i, i + 1))."""

    offset_keV: float
    gain_keV_per_channel: float
    quadratic_keV_per_channel2: float = 0.0

    def energy_keV(self, channel):
        """Energy (keV) at channel coordinate ``channel`` (a number or a numpy array)."""
        return (
            self.offset_keV
            + self.gain_keV_per_channel * channel
            + self.quadratic_keV_per_channel2 * channel * channel
        )

    def as_mapping(self) -> dict[str, float]:
        """The ``detector.calibration`` section of an experiment."""
        return {
            "offset_keV": float(self.offset_keV),
            "gain_keV_per_channel": float(self.gain_keV_per_channel),
            "quadratic_keV_per_channel2": float(self.quadratic_keV_per_channel2),
        }


@dataclass(frozen=True)
class SampleLayer:
    """One layer of the sample a file describes.

    Attributes:
        areal_densities: element (or isotope) -> areal density in 1e15 atoms/cm² (TFU).
        roughness_fwhm_tfu: thickness variation (FWHM, TFU); None when the file gives none.
        roughness_distribution: the distribution of the thickness (SIMNRA: "Gamma", ...);
            None when the file does not name one.
    """

    areal_densities: Mapping[str, float]
    roughness_fwhm_tfu: float | None = None
    roughness_distribution: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "areal_densities", MappingProxyType(dict(self.areal_densities)))

    @property
    def thickness_tfu(self) -> float:
        """Total areal density (TFU)."""
        return float(sum(self.areal_densities.values()))


@dataclass(frozen=True, eq=False)
class MeasuredSpectrum:
    """A spectrum read from a file, with the setup the file states.

    Every setup field is None when the file does not state it.  The arrays are read-only.

    Attributes:
        path: the file read.
        counts: counts per channel (float array), channels ``first_channel`` …
            ``first_channel + n − 1``.
        first_channel: number of the first channel (>= 0).
        energy_axis_keV: the file's x values (keV) when its x axis is energy rather than
            channel number, else None.
        file_format: "IDF", "SIMNRA xnra", "two columns", "one column" or "specinv CSV".
        relative: True when the counts are not whole numbers (normalised or rescaled, e.g.
            maximum 1) and cannot be restored as counts (:func:`restored_counts`): only
            the shape of the spectrum can be fitted.
        simulated: True when the counts are a simulation (SIMNRA's spectrum in an
            ``.xnra`` without measured data, or a ``specinv rbs simulate`` CSV).
        ion: the projectile as named in the file ("4He", "1H", ...).
        beam_energy_keV, beam_spread_fwhm_keV: beam energy and its spread (FWHM), keV.
        geometry: "IBM", "Cornell" or "general".
        incidence_deg, scattering_deg, exit_deg: α, θ and β (from the surface normal) as
            stated; see :meth:`exit_angle_deg` for the β to simulate with.
        calibration: the detector's energy calibration.
        resolution_fwhm_keV: detector resolution (FWHM, keV).
        solid_angle_msr: detector solid angle (msr).
        angular_spread_fwhm_deg: the spread of scattering angles the detector's aperture
            admits (FWHM of the in-plane angle, degrees), from its shape and distance.
        fluence: incident particles (from a charge only when the file states the ion's
            charge state).
        charge_uC: collected charge (µC) when the file gives one.
        charge_state: the ion's charge state when the file gives one.
        layers: the sample's layers, surface first (empty when the file has none).
        notes: every assumption made while reading, one sentence each.
    """

    path: Path
    counts: np.ndarray
    first_channel: int = 0
    energy_axis_keV: np.ndarray | None = None
    file_format: str = ""
    relative: bool = False
    simulated: bool = False
    ion: str | None = None
    beam_energy_keV: float | None = None
    beam_spread_fwhm_keV: float | None = None
    geometry: str | None = None
    incidence_deg: float | None = None
    scattering_deg: float | None = None
    exit_deg: float | None = None
    calibration: Calibration | None = None
    resolution_fwhm_keV: float | None = None
    solid_angle_msr: float | None = None
    angular_spread_fwhm_deg: float | None = None
    fluence: float | None = None
    charge_uC: float | None = None
    charge_state: int | None = None
    layers: tuple[SampleLayer, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        counts = np.array(self.counts, dtype=float)
        if counts.ndim != 1:
            raise _error(self.path, f"counts of shape {counts.shape}; expected one per channel")
        first = self.first_channel
        if isinstance(first, bool) or int(first) != first or first < 0:
            raise _error(self.path, f"first channel {first!r}; expected a whole number >= 0")
        object.__setattr__(self, "first_channel", int(first))
        _check_counts(self.path, counts, int(first))
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)
        if self.energy_axis_keV is not None:
            axis = np.array(self.energy_axis_keV, dtype=float)
            if axis.shape != counts.shape:
                raise _error(
                    self.path,
                    f"{axis.size} energies but {counts.size} counts; expected one energy per "
                    "channel",
                )
            _check_increasing(self.path, axis, "energy", "keV")
            axis.flags.writeable = False
            object.__setattr__(self, "energy_axis_keV", axis)
        if self.geometry is not None and self.geometry not in ("IBM", "Cornell", "general"):
            raise _error(self.path, f"geometry {self.geometry!r}; expected IBM, Cornell or general")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def n_channels(self) -> int:
        return int(self.counts.size)

    @property
    def channels(self) -> np.ndarray:
        """Channel numbers of :attr:`counts`."""
        return np.arange(self.first_channel, self.first_channel + self.n_channels)

    @property
    def layer_areal_densities(self) -> tuple[dict[str, float], ...]:
        """The layers as ``{element: areal density (TFU)}`` mappings, surface first."""
        return tuple(dict(layer.areal_densities) for layer in self.layers)

    def exit_angle_deg(self, tilt: str = "towards") -> float:
        """Exit angle β (degrees from the surface normal) to simulate with: the file's when
        it states one; otherwise derived from the geometry (IBM when not stated): IBM with
        ``tilt`` "towards" (sample tilted towards the detector) |180° − θ − α|, "away"
        180° − θ + α; Cornell cos β = −cos θ cos α (``tilt`` does not matter).

        Raises:
            MeasuredFileError: the file states neither β nor α and θ, the geometry is
                "general" (needs the azimuth), or the derived β is not in [0°, 90°).
            ValueError: ``tilt`` is not "towards" or "away".
        """
        _check_tilt(tilt)
        if self.exit_deg is not None:
            return self.exit_deg
        missing = [
            name
            for name, value in (
                ("incidence angle (geometry.incidence_deg)", self.incidence_deg),
                ("scattering angle (geometry.scattering_deg)", self.scattering_deg),
            )
            if value is None
        ]
        if missing:
            raise _error(
                self.path,
                f"no exit angle and no {' and no '.join(missing)} in the file; expected them "
                "to derive the exit angle: give geometry.exit_deg",
            )
        geometry = self.geometry or "IBM"
        if geometry == "general":
            raise _error(
                self.path,
                "geometry general and no exit angle in the file; expected geometry.exit_deg "
                "(or geometry.azimuth_deg)",
            )
        beta = derived_exit_angle_deg(geometry, self.incidence_deg, self.scattering_deg, tilt)
        if not 0.0 <= beta < 90.0:
            raise _error(
                self.path,
                f"tilt {tilt!r} gives an exit angle of {beta:g} deg ({geometry}, alpha = "
                f"{self.incidence_deg:g}, theta = {self.scattering_deg:g}); expected 0 <= beta "
                "< 90 (the detector must see the surface): use the other tilt or give "
                "geometry.exit_deg",
            )
        return beta

    def exit_angle_note(self, tilt: str = "towards") -> str | None:
        """One sentence saying how :meth:`exit_angle_deg` (``tilt``) was found and how to
        choose otherwise; None when the file states the exit angle."""
        _check_tilt(tilt)
        if self.exit_deg is not None:
            return None
        beta = self.exit_angle_deg(tilt)
        geometry = self.geometry or "IBM"
        if geometry == "Cornell":
            return (
                f"exit angle not stated in the file: Cornell geometry, cos beta = -cos theta "
                f"cos alpha gives {beta:g} deg; state another as geometry.exit_deg or --exit-deg"
            )
        other = TILTS[1 - TILTS.index(tilt)]
        other_beta = derived_exit_angle_deg("IBM", self.incidence_deg, self.scattering_deg, other)
        return (
            f"exit angle not stated in the file: assumed the sample is tilted "
            f"{_TILT_WORDS[tilt]} the detector ({_IBM_RULES[tilt]} = {beta:g} deg); tilt {other!r} "
            f"({_IBM_RULES[other]}) gives {other_beta:g} deg: choose it with tilt={other!r}, "
            "or state the angle (<exitangle> in the file, geometry.exit_deg in the "
            "experiment, or --exit-deg)"
        )


_TILT_WORDS = {"towards": "towards", "away": "away from"}
_IBM_RULES = {"towards": "beta = |180 - theta - alpha|", "away": "beta = 180 - theta + alpha"}


def _check_tilt(tilt: str) -> None:
    if tilt not in TILTS:
        raise ValueError(f"tilt: expected 'towards' or 'away', got {tilt!r}")


def derived_exit_angle_deg(
    geometry: str, incidence_deg: float, scattering_deg: float, tilt: str = "towards"
) -> float:
    """Exit angle β (degrees from the surface normal) of a detector at scattering angle θ
    (``scattering_deg``) with the beam at incidence α (``incidence_deg``).

    * IBM (beam, normal and detector in one plane): ``tilt`` "towards" (the sample turned
      towards the detector) gives |180° − θ − α|, "away" gives 180° − θ + α;
    * Cornell (detector out of the tilt plane): cos β = −cos θ cos α, whatever ``tilt``.

    Raises:
        ValueError: another geometry (a "general" one needs the azimuth) or tilt.
    """
    _check_tilt(tilt)
    if geometry == "IBM":
        if tilt == "towards":
            return abs(180.0 - scattering_deg - incidence_deg)
        return 180.0 - scattering_deg + incidence_deg
    if geometry == "Cornell":
        cos_beta = -math.cos(math.radians(scattering_deg)) * math.cos(math.radians(incidence_deg))
        return math.degrees(math.acos(max(-1.0, min(1.0, cos_beta))))
    raise ValueError(
        f"geometry: expected IBM or Cornell to derive the exit angle, got {geometry!r}"
    )


# ---------------------------------------------------------------------------------------
# checks shared by the readers


def _check_counts(
    path: Path, counts: np.ndarray, first_channel: int, lines: Sequence[int] | None = None
) -> None:
    """Refuse fewer than 2 channels, non-finite or negative counts (naming the channel and,
    for text files, the line), and a spectrum without any counts."""
    if counts.size < 2:
        raise _error(path, f"{counts.size} channel(s); expected a spectrum of at least 2")

    def where(i: int) -> str:
        line = "" if lines is None else f" (line {lines[i]})"
        return f"channel {first_channel + i}{line}"

    bad = np.flatnonzero(~np.isfinite(counts))
    if bad.size:
        i = int(bad[0])
        raise _error(path, f"{where(i)}: count {counts[i]}; expected a finite number")
    bad = np.flatnonzero(counts < 0)
    if bad.size:
        i = int(bad[0])
        raise _error(path, f"{where(i)}: count {counts[i]:g}; expected counts >= 0")
    if not counts.any():
        raise _error(path, f"all {counts.size} counts are zero; expected a spectrum")


def _check_increasing(
    path: Path, values: np.ndarray, name: str, unit: str, lines: Sequence[int] | None = None
) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise _error(path, f"{name} {values[bad[0]]} at point {bad[0]}; expected finite values")
    bad = np.flatnonzero(np.diff(values) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        where = f"line {lines[i]}" if lines is not None else f"point {i}"
        raise _error(
            path,
            f"{where}: {name} {values[i]:g} {unit} after {values[i - 1]:g}; expected strictly "
            f"increasing {name}s",
        )


def _whole(counts: np.ndarray) -> bool:
    return bool(np.all(counts == np.round(counts)))


def restored_counts(values: np.ndarray, tolerance: float = 0.02) -> tuple[np.ndarray, float] | None:
    """The counts behind a spectrum that was divided by a constant (e.g. by its largest
    channel): ``(counts, factor)`` with ``counts = values × factor`` whole numbers, the
    smallest step of the values taken as one count; None when the values are not such
    multiples (within ``tolerance`` of a count in every channel) or when the step is a
    power of ten (then it is more likely the precision the values were printed with)."""
    positive = values[values > 0]
    if positive.size < 10:
        return None
    step, largest = positive.min(), positive.max()
    # the largest value holds the most digits: the factor from it, the step named by it
    factor = round(largest / step) / largest
    exponent = np.log10(factor)
    if factor <= 1.0 or factor * largest > 1e12 or abs(exponent - round(exponent)) < 1e-6:
        return None
    counts = values * factor
    if np.abs(counts - np.round(counts)).max() > tolerance:
        return None
    return np.round(counts), factor


def _restored_note(factor: float, counts: np.ndarray) -> str:
    return (
        f"the values are whole multiples of 1/{factor:.6g} (a spectrum divided by a constant, "
        f"e.g. its largest channel): restored as counts (x {factor:.6g}, largest "
        f"{counts.max():.0f}) on the assumption that the smallest step is one count, so that "
        "Poisson weights apply; fit with --relative if it is not"
    )


def _counts_or_relative(
    counts: np.ndarray, simulated: bool, notes: list[str]
) -> tuple[np.ndarray, bool]:
    """(counts, relative) of a spectrum read from a file: whole numbers as they are,
    multiples of a constant restored (:func:`restored_counts`), anything else relative.
    Appends the note that says which."""
    if simulated or _whole(counts):
        return counts, False
    restored = restored_counts(counts)
    if restored is not None:
        notes.append(_restored_note(restored[1], restored[0]))
        return restored[0], False
    notes.append(_relative_note(counts))
    return counts, True


def _relative_note(counts: np.ndarray) -> str:
    return (
        f"counts are not whole numbers (largest {counts.max():.6g}): a normalised or "
        "rescaled spectrum (relative=True); only its shape can be fitted (give a fluence, "
        "e.g. 1, and fit a free scale)"
    )


def _calibration_from_energies(
    channels: np.ndarray, energies: np.ndarray, *, edges_known: bool = False
) -> tuple[Calibration | None, str]:
    """The calibration (polynomial of degree <= 2) that gives ``energies`` (keV) at the
    lower edges of ``channels``, if one does to within 1 % of a channel; and a note
    (``edges_known``: the file says the energies are lower edges)."""
    step = float(np.median(np.diff(energies)))
    tolerance = 0.01 * abs(step)
    chi = channels.astype(float)
    for degree in (1, 2):
        if chi.size <= degree:
            break
        coef = np.polynomial.polynomial.polyfit(chi, energies, degree)
        residual = float(np.max(np.abs(np.polynomial.polynomial.polyval(chi, coef) - energies)))
        if residual <= tolerance:
            coef = [*coef, 0.0, 0.0][:3]
            cal = Calibration(float(coef[0]), float(coef[1]), float(coef[2]))
            if cal.gain_keV_per_channel + 2 * cal.quadratic_keV_per_channel2 * chi[-1] <= 0:
                break
            return cal, (
                f"detector calibration derived from the energies ({cal.offset_keV:.6g} keV + "
                f"{cal.gain_keV_per_channel:.6g} keV/channel"
                + (f" + {cal.quadratic_keV_per_channel2:.6g} keV/channel^2" if degree == 2 else "")
                + (
                    ") from the channels' lower edges"
                    if edges_known
                    else "), taking each energy as the lower edge of its channel (if they are "
                    "channel centres, the offset is half a channel lower)"
                )
            )
    return None, (
        "the energies are not a polynomial of degree <= 2 of the channel number: no detector "
        "calibration derived"
    )


# ---------------------------------------------------------------------------------------
# reading a file


def read_spectrum(
    path: str | Path, *, index: int = 0, max_bytes: int = MAX_FILE_BYTES
) -> MeasuredSpectrum:
    """Read a measured RBS spectrum (IDF/xnra XML, columns of numbers, or a
    ``specinv rbs simulate`` CSV; see the module docstring), the format decided from the
    content.

    Args:
        path: the file.
        index: which spectrum of an IDF file that holds several (0: the first).
        max_bytes: larger files are refused.

    Raises:
        MeasuredFileError: one line naming the file, what was found and what was expected:
            a missing, empty, binary or oversized file, malformed or unsafe XML, unknown
            units, ion or element names, arrays of different lengths, non-finite or
            negative counts (naming the channel), fewer than 2 channels.
    """
    path = Path(path)
    raw = _read_bytes(path, max_bytes)
    body = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        raise _error(
            path, "empty file; expected a spectrum (IDF XML, or columns of channel and counts)"
        )
    if body.startswith(b"<"):
        return _read_idf(path, raw, index)
    return _read_columns(path, _decode_text(path, raw))


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        if path.is_dir():
            raise _error(path, "a folder; expected a spectrum file")
        size = path.stat().st_size
        if size > max_bytes:
            raise _error(
                path,
                f"{_size(size)}; expected at most {_size(max_bytes)} (spectrum files are kB to "
                "a few MB)",
            )
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise _error(path, "no such file; expected a measured spectrum") from None
    except OSError as exc:
        raise _error(path, f"cannot read the file ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise _error(path, f"more than {_size(max_bytes)}; expected a smaller spectrum file")
    return raw


#: control characters that do not occur in text files (tab, line feed, carriage return do)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _decode_text(path: Path, raw: bytes) -> str:
    """UTF-8 text (Latin-1 accepted for instrument headers); binary data is refused."""
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        utf16 = " (UTF-16 text? save it as UTF-8)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise _error(
            path,
            f"binary data (a NUL byte at offset {offset}){utf16}; expected a text file of "
            "numbers or IDF XML",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    bad = _CONTROL.search(text)
    if bad:
        raise _error(
            path,
            f"binary data (control character 0x{ord(bad.group()):02x} at character "
            f"{bad.start()}); expected a text file of numbers or IDF XML",
        )
    return text


# ---------------------------------------------------------------------------------------
# columns of numbers

_SEPARATORS = re.compile(r"[\s,;]+")
_COMMENTS = ("#", "!", "%")
#: header of the CSV that ``specinv rbs simulate`` writes
_SPECINV_CSV = ("channel", "energy_kev", "counts")


@dataclass(frozen=True)
class _Table:
    names: tuple[str, ...] | None  # the header line's names (lower case), if any
    values: np.ndarray  # rows x columns
    lines: tuple[int, ...]  # line number of every row


def _parse_table(path: Path, text: str) -> _Table:
    """Rows of numbers (the same count on every line) and the header line before them.

    The numbers are converted all at once (a spectrum of 8192 channels in milliseconds);
    the line-by-line reading that names a bad line runs only when that fails."""
    names: tuple[str, ...] | None = None
    kept: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip().strip(",;").strip()
        if not stripped or stripped.startswith(_COMMENTS):
            continue
        kept.append(stripped)
        lines.append(number)
    widths = [len(_SEPARATORS.split(line)) for line in kept]
    first = 0
    while first < len(kept):  # header lines: those before the first line of numbers
        try:
            [float(f) for f in _SEPARATORS.split(kept[first])]
            break
        except ValueError:
            names = tuple(f.strip("\"'").lower() for f in _SEPARATORS.split(kept[first]))
            first += 1
    body, widths, lines = kept[first:], widths[first:], lines[first:]
    if not body:
        raise _error(
            path,
            "no lines of numbers; expected one column (counts) or two (channel or energy, "
            "counts), or IDF XML",
        )

    def not_numbers(i: int) -> MeasuredFileError | None:
        try:
            [float(f) for f in _SEPARATORS.split(body[i])]
        except ValueError:
            return _error(
                path,
                f"line {lines[i]}: {body[i][:60]!r} is not numbers; expected {widths[0]} "
                f"numbers per line like line {lines[0]}",
            )
        return None

    for i, width in enumerate(widths):
        if width != widths[0]:
            raise not_numbers(i) or _error(
                path,
                f"line {lines[i]}: {width} values but line {lines[0]} has {widths[0]}; "
                "expected the same number of columns on every line",
            )
    try:
        values = np.asarray(_SEPARATORS.split(" ".join(body)), dtype=float)
    except ValueError:
        raise next(e for e in map(not_numbers, range(len(body))) if e is not None) from None
    return _Table(names, values.reshape(len(body), widths[0]), tuple(lines))


def _consecutive_integers(x: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(x)) and np.all(x == np.round(x)) and np.all(np.diff(x) == 1))


def _x_column(names: Sequence[str], y_col: int) -> int | None:
    """The column of channels or energies beside the named counts column ``y_col``: one
    named like a channel, else like an energy, else the first other column (not
    ``expected_counts``); None when there is none."""
    others = [i for i, n in enumerate(names) if i != y_col and n != "expected_counts"]
    for test in (lambda n: "chan" in n, lambda n: n.startswith("energy") or "kev" in n):
        for i in others:
            if test(names[i]):
                return i
    return others[0] if others else None


def _read_columns(path: Path, text: str) -> MeasuredSpectrum:
    table = _parse_table(path, text)
    notes: list[str] = []
    n_cols = table.values.shape[1]
    names = table.names if table.names is not None and len(table.names) == n_cols else None
    simulated = False
    if names is not None and "counts" in names:
        y_col = names.index("counts")
        x_col = _x_column(names, y_col)
        if names[:3] == _SPECINV_CSV:
            file_format, simulated = "specinv CSV", True
            notes.append(
                "a CSV written by specinv rbs simulate: counts from its counts column "
                + (
                    "(Poisson noise drawn from expected_counts, which is not used)"
                    if "expected_counts" in names
                    else "(the simulator's expected counts)"
                )
            )
        else:
            file_format = "two columns" if x_col is not None else "one column"
            notes.append(
                f"columns chosen by the header: counts from column {y_col + 1}"
                + ("" if x_col is None else f", channel or energy from column {x_col + 1}")
            )
    elif n_cols == 1:
        x_col, y_col, file_format = None, 0, "one column"
    else:
        x_col, y_col, file_format = 0, 1, "two columns"
        if n_cols > 2:
            notes.append(f"{n_cols} columns: the first two read, the others ignored")
    counts = table.values[:, y_col]
    x_name = names[x_col] if names is not None and x_col is not None else ""
    first_channel, energies, calibration = 0, None, None
    if x_col is None:
        notes.append("one column: the counts of channels 0, 1, 2, ...")
    else:
        x = table.values[:, x_col]
        is_channel = "chan" in x_name or (
            "energy" not in x_name and "kev" not in x_name and _consecutive_integers(x)
        )
        if is_channel:
            _check_channel_numbers(path, x, table.lines)
            first_channel = int(x[0])
            notes.append(
                f"column {x_col + 1} read as channel numbers (consecutive whole numbers)"
                + (f" from channel {first_channel}" if first_channel else "")
            )
            if file_format == "specinv CSV":
                calibration, note = _calibration_from_energies(
                    x, table.values[:, names.index("energy_kev")], edges_known=True
                )
                notes.append(note)
        else:
            scale = 1e3 if "mev" in x_name else 1.0
            energies = x * scale
            _check_increasing(path, energies, "energy", "keV", table.lines)
            notes.append(
                f"column {x_col + 1} read as energies in {'MeV' if scale > 1 else 'keV'} "
                "(not consecutive whole numbers), the counts as channels 0, 1, 2, ..."
            )
            calibration, note = _calibration_from_energies(
                np.arange(energies.size, dtype=float), energies
            )
            notes.append(note)
    _check_counts(path, counts, first_channel, table.lines)
    counts, relative = _counts_or_relative(counts, simulated, notes)
    if not simulated:
        notes.append(
            "plain columns state no setup: give beam, geometry, detector, fluence and sample "
            "in the experiment"
        )
    return MeasuredSpectrum(
        path=path,
        counts=counts,
        first_channel=first_channel,
        energy_axis_keV=energies,
        file_format=file_format,
        relative=relative,
        simulated=simulated,
        calibration=calibration,
        notes=tuple(notes),
    )


def _check_channel_numbers(path: Path, x: np.ndarray, lines: Sequence[int] | None) -> None:
    def where(i: int) -> str:
        return f"line {lines[i]}" if lines is not None else f"point {i}"

    whole = np.isfinite(x) & (x == np.round(x))
    if not whole.all():
        i = int(np.argmin(whole))
        raise _error(path, f"{where(i)}: channel {x[i]}; expected a whole channel number")
    steps = np.diff(x) == 1
    if not steps.all():
        i = int(np.argmin(steps)) + 1
        raise _error(
            path,
            f"{where(i)}: channel {x[i]:g} after {x[i - 1]:g}; expected consecutive channels",
        )
    if x[0] < 0:
        raise _error(path, f"channels start at {x[0]:g}; expected channel numbers >= 0")


# ---------------------------------------------------------------------------------------
# IBA data format (IDF) and SIMNRA's xnra

#: names of projectiles that are not element or isotope names
_ION_ALIASES = {
    "alpha": "4He",
    "a": "4He",
    "p": "1H",
    "proton": "1H",
    "d": "2H",
    "deuteron": "2H",
}

#: kind of quantity -> (canonical unit, the units accepted for messages, unit (lower case,
#: without spaces) -> factor to the canonical unit)
_UNITS: dict[str, tuple[str, str, dict[str, float]]] = {
    "energy": ("keV", "keV, MeV or eV", {"kev": 1.0, "mev": 1e3, "ev": 1e-3}),
    "angle": ("degree", "degree", {"degree": 1.0, "degrees": 1.0, "deg": 1.0}),
    "solid angle": ("msr", "msr or sr", {"msr": 1.0, "sr": 1e3}),
    "areal density": (
        "1e15at/cm2",
        "1e15at/cm2 or at/cm2",
        {
            "1e15at/cm2": 1.0,
            "1e15atoms/cm2": 1.0,
            "tfu": 1.0,
            "at/cm2": 1e-15,
            "atoms/cm2": 1e-15,
        },
    ),
    "length": ("mm", "mm, cm, m or um", {"mm": 1.0, "cm": 10.0, "m": 1e3, "um": 1e-3}),
    "charge": (
        "uC",
        "uC, nC, mC or C",
        {"uc": 1.0, "µc": 1.0, "microc": 1.0, "nc": 1e-3, "mc": 1e3, "c": 1e6},
    ),
}
_PARTICLE_UNITS = ("#particles", "particles", "#", "ions", "#ions", "particle")
_CHANNEL_UNITS = ("channel", "channels", "#", "ch", "chan")


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


@dataclass
class _Idf:
    """What one reading of an IDF file needs: the path (for messages), the file's IDF
    namespace and the notes gathered."""

    path: Path
    ns: str
    notes: list[str]

    def fail(self, message: str) -> MeasuredFileError:
        return _error(self.path, message)

    def children(self, elem, name: str, ns: str | None = None) -> list:
        if elem is None:
            return []
        want = self.ns if ns is None else ns
        return [c for c in elem if isinstance(c.tag, str) and _local(c.tag) == (want, name)]

    def find(self, elem, *names: str, ns: str | None = None):
        for name in names:
            found = self.children(elem, name, ns)
            elem = found[0] if found else None
        return elem

    @staticmethod
    def text(elem) -> str | None:
        if elem is None or elem.text is None or not elem.text.strip():
            return None
        return elem.text.strip()

    def number(self, elem, where: str) -> float | None:
        text = self.text(elem)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.fail(f"{where} {text[:40]!r}; expected a number") from None
        if not math.isfinite(value):
            raise self.fail(f"{where} {text!r}; expected a finite number")
        return value

    def quantity(self, elem, where: str, kind: str) -> float | None:
        """The element's number in the canonical unit of ``kind`` (its ``units``
        attribute converted; a missing one is taken as the canonical unit, with a note)."""
        value = self.number(elem, where)
        if value is None:
            return None
        canonical, accepted, factors = _UNITS[kind]
        units = elem.get("units")
        if units is None or not units.strip():
            self.notes.append(f"{where} has no units: read as {canonical}")
            return value
        key = re.sub(r"\s+", "", units).lower()
        if key not in factors:
            hint = ""
            if kind == "areal density" and key in ("nm", "um", "µm", "a", "å", "angstrom"):
                hint = " (a thickness needs the layer's density: convert it to 1e15at/cm2)"
            raise self.fail(f"{where} in units {units!r}; expected {kind} in {accepted}{hint}")
        return value * factors[key]

    def width(self, elem, where: str, kind: str) -> float | None:
        """A width given as FWHM (``mode="FWHM"``, the default) or σ, returned as FWHM."""
        value = self.quantity(elem, where, kind)
        if value is None:
            return None
        mode = (elem.get("mode") or "FWHM").strip().lower()
        if mode == "fwhm":
            return value
        if mode == "sigma":
            self.notes.append(f"{where} given as sigma: converted to FWHM (x {FWHM_PER_SIGMA:.4f})")
            return value * FWHM_PER_SIGMA
        raise self.fail(f"{where} with mode {elem.get('mode')!r}; expected FWHM or sigma")

    def array(self, elem, where: str) -> np.ndarray:
        text = elem.text or ""
        fields = [f for f in _SEPARATORS.split(text.strip()) if f]
        try:
            return np.array(fields, dtype=float)
        except ValueError:
            for i, f in enumerate(fields):
                try:
                    float(f)
                except ValueError:
                    raise self.fail(
                        f"{where}: value {i} is {f[:30]!r}; expected numbers separated by spaces"
                    ) from None
            raise


def _parse_xml(path: Path, raw: bytes):
    """The root element; DTD entities and external references refused, malformed XML
    reported with its line and column."""
    from xml.etree.ElementTree import ParseError

    import defusedxml
    import defusedxml.ElementTree as safe_tree

    try:
        return safe_tree.fromstring(
            raw, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except defusedxml.EntitiesForbidden as exc:
        what = (
            f"external entity {exc.name!r} ({exc.sysid})" if exc.sysid else f"entity {exc.name!r}"
        )
        raise _error(
            path,
            f"the XML declares the {what} in a DTD; expected IDF without entity "
            "declarations (refused: entity expansion and external files are unsafe)",
        ) from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise _error(
            path,
            f"the XML refers to the external resource {exc.sysid!r}; expected a "
            "self-contained IDF file (refused: external references are unsafe)",
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise _error(path, f"unsafe XML ({exc}); expected a plain IDF file") from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        raise _error(
            path,
            f"not well-formed XML at line {line}, column {column} ({reason}); expected a "
            "complete IDF file (is it truncated?)",
        ) from None


def _read_idf(path: Path, raw: bytes, index: int) -> MeasuredSpectrum:
    root = _parse_xml(path, raw)
    ns, local = _local(root.tag)
    if local != "idf":
        raise _error(
            path,
            f"XML with root element <{local}>; expected <idf> (IBA data format, namespace "
            f"{IDF_NAMESPACE})",
        )
    r = _Idf(path, ns, [])
    if ns != IDF_NAMESPACE:
        r.notes.append(f"root <idf> in namespace {ns!r}, not {IDF_NAMESPACE}: read as IDF")
    is_xnra = path.suffix.lower() == ".xnra" or any(
        isinstance(e.tag, str) and _local(e.tag)[0] == SIMNRA_NAMESPACE for e in root.iter()
    )
    pairs = [
        (sample, spectrum)
        for sample in r.children(root, "sample")
        for spectrum in r.children(r.find(sample, "spectra"), "spectrum")
    ]
    if not pairs:
        raise r.fail("no <sample><spectra><spectrum>; expected at least one spectrum")
    if not 0 <= index < len(pairs):
        raise r.fail(
            f"spectrum {index} asked for; the file holds {len(pairs)} (0 … {len(pairs) - 1})"
        )
    if len(pairs) > 1:
        r.notes.append(f"the file holds {len(pairs)} spectra: spectrum {index} read")
    sample, spectrum = pairs[index]

    beam = r.find(spectrum, "beam")
    ion = _idf_ion(r, beam)
    energy = r.quantity(r.find(beam, "beamenergy"), "<beam><beamenergy>", "energy")
    if energy is not None and energy <= 0:
        raise r.fail(f"<beam><beamenergy> {energy:g} keV; expected a beam energy > 0")
    spread = r.width(r.find(beam, "beamenergyspread"), "<beam><beamenergyspread>", "energy")
    fluence, charge, charge_state = _idf_fluence(r, beam)
    geometry, alpha, theta, beta = _idf_geometry(r, r.find(spectrum, "geometry"))
    solid = _positive_or_none(
        r,
        r.quantity(
            r.find(spectrum, "detection", "detector", "solidangle"),
            "<detector><solidangle>",
            "solid angle",
        ),
        "<detector><solidangle>",
    )
    aperture = _idf_aperture(r, spectrum)
    calibrations = r.find(spectrum, "calibrations")
    calibration = _idf_calibration(r, calibrations)
    resolution = _idf_resolution(r, calibrations)
    counts, first_channel, energies, simulated, fmt_note = _idf_data(r, spectrum)
    if energies is not None and calibration is None:
        calibration, note = _calibration_from_energies(
            np.arange(first_channel, first_channel + energies.size, dtype=float), energies
        )
        r.notes.append(note)
    layers = _idf_layers(r, sample)
    if fmt_note:
        r.notes.append(fmt_note)
    counts, relative = _counts_or_relative(counts, simulated, r.notes)
    return MeasuredSpectrum(
        path=path,
        counts=counts,
        first_channel=first_channel,
        energy_axis_keV=energies,
        file_format="SIMNRA xnra" if is_xnra else "IDF",
        relative=relative,
        simulated=simulated,
        ion=ion,
        beam_energy_keV=energy,
        beam_spread_fwhm_keV=spread,
        geometry=geometry,
        incidence_deg=alpha,
        scattering_deg=theta,
        exit_deg=beta,
        calibration=calibration,
        resolution_fwhm_keV=resolution,
        solid_angle_msr=solid,
        angular_spread_fwhm_deg=aperture,
        fluence=fluence,
        charge_uC=charge,
        charge_state=charge_state,
        layers=layers,
        notes=tuple(r.notes),
    )


def _idf_aperture(r: _Idf, spectrum) -> float | None:
    """The FWHM (degrees) of the in-plane scattering angles a detector admits, from its
    <detectorshape> (circular: diameter l1; rectangular: width l1 taken in the scattering
    plane) and <distancedetectortosample>; None when either is missing, or when a SIMNRA
    file switches the detector aperture's spread off.  A uniform disk of angular radius R
    has an in-plane standard deviation R/2, a slit of angular width w one of w/√12."""
    detector = r.find(spectrum, "detection", "detector")
    shape = r.find(detector, "detectorshape")
    kind = (r.text(r.find(shape, "shape")) or "").lower()
    size = r.quantity(r.find(shape, "l1"), "<detectorshape><l1>", "length") if shape else None
    distance = r.quantity(
        r.find(detector, "distancedetectortosample"), "<distancedetectortosample>", "length"
    )
    if not size or not distance or kind not in ("circular", "rectangular"):
        return None
    switched = [
        e.text.strip().lower()
        for e in spectrum.iter()
        if isinstance(e.tag, str) and _local(e.tag)[1] == "detectoraperture" and e.text
    ]
    if switched and switched[0] == "false":
        return None
    if kind == "circular":
        sigma = math.atan(0.5 * size / distance) / 2.0
    else:
        sigma = math.atan(size / distance) / math.sqrt(12.0)
    fwhm = math.degrees(sigma) * FWHM_PER_SIGMA
    r.notes.append(
        f"detector aperture: {kind} {size:g} mm at {distance:g} mm, a spread of scattering "
        f"angles of {fwhm:.3g} deg FWHM (detector.angular_spread_fwhm_deg)"
    )
    return fwhm


def _positive_or_none(r: _Idf, value: float | None, where: str) -> float | None:
    """A quantity that must be > 0 to be used: 0 or less is taken as not stated."""
    if value is not None and value <= 0:
        r.notes.append(f"{where} is {value:g}: taken as not stated")
        return None
    return value


def _idf_ion(r: _Idf, beam) -> str | None:
    """The projectile: <beamparticle>, or <beamZ> and <beammass> when it is empty."""
    name = r.text(r.find(beam, "beamparticle"))
    where = "<beam><beamparticle>"
    if name is None:
        z = r.number(r.find(beam, "beamZ"), "<beam><beamZ>")
        if z is None:
            return None
        import periodictable

        try:
            if z != round(z) or z < 1:
                raise KeyError(z)
            symbol = periodictable.elements[int(z)].symbol
        except (KeyError, IndexError):
            raise r.fail(f"<beam><beamZ> {z:g}; expected an atomic number") from None
        mass = r.number(r.find(beam, "beammass"), "<beam><beammass>")
        name = f"{round(mass)}{symbol}" if mass else symbol
        where = "<beam><beamZ>, <beammass>"
        r.notes.append(f"no <beamparticle>: the ion {name} from {where}")
    name = _ION_ALIASES.get(name.lower(), name)
    try:
        beam_ion(name, where)
    except ExperimentError as exc:
        raise r.fail(f"{exc}; expected an ion such as 4He, 1H or 7Li") from None
    return name


def _idf_fluence(r: _Idf, beam) -> tuple[float | None, float | None, int | None]:
    """(fluence in particles, charge in µC, charge state) of the beam.

    A charge becomes a fluence only with the ion's charge state (``<beamchargestate>`` or
    ``<chargestate>`` in ``<beam>``): particles = charge / (charge state · e)."""
    fluence = charge = None
    elem = r.find(beam, "beamfluence")
    value = r.number(elem, "<beam><beamfluence>")
    if value is not None:
        units = re.sub(r"\s+", "", elem.get("units") or "").lower()
        if units in _PARTICLE_UNITS or not units:
            if not units:
                r.notes.append("<beam><beamfluence> has no units: read as particles")
            fluence = _positive_or_none(r, value, "<beam><beamfluence>")
        elif units in _UNITS["charge"][2]:
            charge = value * _UNITS["charge"][2][units]
        else:
            raise r.fail(
                f"<beam><beamfluence> in units {elem.get('units')!r}; expected #particles or a "
                "charge (uC, nC)"
            )
    elem = r.find(beam, "charge")
    if charge is None and r.text(elem) is not None:
        charge = r.quantity(elem, "<beam><charge>", "charge")
    state_elem = r.find(beam, "beamchargestate")
    if state_elem is None:
        state_elem = r.find(beam, "chargestate")
    state = r.number(state_elem, "<beam><beamchargestate>")
    if state is not None and (state != round(state) or state < 1):
        raise r.fail(f"<beam><beamchargestate> {state:g}; expected a whole number >= 1")
    state = None if state is None else int(state)
    if charge is not None and charge <= 0:
        r.notes.append(f"charge {charge:g} uC: taken as not stated")
        charge = None
    if fluence is None and charge is not None:
        if state is not None:
            fluence = charge * 1e-6 / (state * ELEMENTARY_CHARGE_C)
            r.notes.append(
                f"fluence {fluence:.6g} particles from the charge {charge:g} uC and the charge "
                f"state {state}+"
            )
        else:
            r.notes.append(
                f"the file gives a charge of {charge:g} uC but not the ion's charge state: "
                "the number of particles is unknown (fluence None); give fluence in the "
                "experiment (particles = charge / (charge state x e))"
            )
    return fluence, charge, state


_GEOMETRIES = {"ibm": "IBM", "cornell": "Cornell", "general": "general"}


def _idf_geometry(r: _Idf, geo):
    """(type, α, θ, β) with notes on what the file leaves open."""
    text = r.text(r.find(geo, "geometrytype"))
    geometry = None
    if text is not None:
        geometry = _GEOMETRIES.get(text.lower())
        if geometry is None:
            raise r.fail(f"<geometry><geometrytype> {text!r}; expected IBM, Cornell or general")
    alpha = r.quantity(r.find(geo, "incidenceangle"), "<geometry><incidenceangle>", "angle")
    theta = r.quantity(r.find(geo, "scatteringangle"), "<geometry><scatteringangle>", "angle")
    beta = r.quantity(r.find(geo, "exitangle"), "<geometry><exitangle>", "angle")
    if alpha is None or theta is None:
        return geometry, alpha, theta, beta
    if geometry is None:
        r.notes.append("geometry type not stated: IBM assumed")
    kind = geometry or "IBM"
    if beta is None:
        if kind == "IBM":
            towards = derived_exit_angle_deg("IBM", alpha, theta, "towards")
            away = derived_exit_angle_deg("IBM", alpha, theta, "away")
            r.notes.append(
                f"exit angle not stated (IBM, alpha = {alpha:g} deg, theta = {theta:g} deg): it "
                f"depends on the sample's tilt; tilt 'towards' ({_IBM_RULES['towards']}, the "
                f"default) gives {towards:g} deg, tilt 'away' ({_IBM_RULES['away']}) gives "
                f"{away:g} deg: choose with tilt=..., or state the angle (<exitangle> in the "
                "file, geometry.exit_deg in the experiment, or --exit-deg)"
            )
        elif kind == "Cornell":
            cornell = derived_exit_angle_deg("Cornell", alpha, theta)
            r.notes.append(
                f"exit angle not stated: Cornell geometry, cos beta = -cos theta cos alpha "
                f"gives {cornell:g} deg"
            )
        else:
            r.notes.append(
                "exit angle not stated and the geometry is general: give geometry.exit_deg "
                "(or geometry.azimuth_deg) in the experiment"
            )
    elif kind == "IBM":
        towards = derived_exit_angle_deg("IBM", alpha, theta, "towards")
        away = derived_exit_angle_deg("IBM", alpha, theta, "away")
        if abs(beta - towards) > 0.01 and abs(beta - away) <= 0.01:
            r.notes.append(
                f"the stated exit angle {beta:g} deg is IBM with the sample tilted away from "
                f"the detector ({_IBM_RULES['away']})"
            )
        elif abs(beta - towards) > 0.01:
            r.notes.append(
                f"the stated exit angle {beta:g} deg differs from IBM's {towards:g} deg "
                f"(tilt towards) and {away:g} deg (tilt away): the stated one is used"
            )
    return geometry, alpha, theta, beta


def _idf_calibration(r: _Idf, calibrations) -> Calibration | None:
    """The first <energycalibration>: parameters with units keV, keV/channel and
    keV/channel^2 (MeV converted), in that order when the units are missing."""
    cals = r.children(r.find(calibrations, "energycalibrations"), "energycalibration")
    if not cals:
        return None
    if len(cals) > 1:
        r.notes.append(f"{len(cals)} energy calibrations: the first read")
    mode = r.text(r.find(cals[0], "calibrationmode"))
    if mode is not None and mode.lower() != "energy":
        raise r.fail(
            f"<energycalibration><calibrationmode> {mode!r}; expected energy (E as a "
            "polynomial of the channel)"
        )
    params = r.children(r.find(cals[0], "calibrationparameters"), "calibrationparameter")
    coef: dict[int, float] = {}
    for position, elem in enumerate(params):
        where = f"<calibrationparameter> {position + 1}"
        value = r.number(elem, where)
        if value is None:
            continue
        units = re.sub(r"\s+", "", elem.get("units") or "").lower()
        if not units:
            power, factor = position, 1.0
            r.notes.append(f"{where} has no units: read as keV/channel^{position}")
        else:
            energy, _, per = units.partition("/")
            factor = _UNITS["energy"][2].get(energy)
            power = {"": 0, "channel": 1, "ch": 1}.get(per)
            if per in ("channel^2", "channel2", "channel**2", "ch^2"):
                power = 2
            if factor is None or power is None:
                raise r.fail(
                    f"{where} in units {elem.get('units')!r}; expected keV, keV/channel or "
                    "keV/channel^2"
                )
        if power in coef:
            raise r.fail(f"{where}: a second keV/channel^{power} term; expected one of each")
        coef[power] = value * factor
    if not coef:
        return None
    if any(p > 2 and v != 0 for p, v in coef.items()):
        raise r.fail(
            f"energy calibration of degree {max(coef)}; expected at most offset, gain and "
            "quadratic terms"
        )
    if 1 not in coef:
        raise r.fail("energy calibration without a keV/channel term; expected offset and gain")
    if 0 not in coef:
        r.notes.append("energy calibration without an offset: 0 keV assumed")
    return Calibration(coef.get(0, 0.0), coef[1], coef.get(2, 0.0))


def _idf_resolution(r: _Idf, calibrations) -> float | None:
    params = r.children(
        r.find(calibrations, "detectorresolutions", "detectorresolution", "resolutionparameters"),
        "resolutionparameter",
    )
    if not params:
        return None
    if len(params) > 1:
        r.notes.append(
            f"{len(params)} detector resolution parameters: only the first (a constant FWHM) read"
        )
    where = "<detectorresolution><resolutionparameter>"
    return _positive_or_none(r, r.width(params[0], where, "energy"), where)


def _idf_simpledata(r: _Idf, simpledata, where: str):
    """(x or None, y, x-axis unit) of a <simpledata>."""
    y_elem = r.find(simpledata, "y")
    if y_elem is None:
        return None, None, None
    y = r.array(y_elem, f"{where}<y>")
    x_elem = r.find(simpledata, "x")
    x = None if x_elem is None or r.text(x_elem) is None else r.array(x_elem, f"{where}<x>")
    if x is not None and x.size != y.size:
        raise r.fail(
            f"{where}<y> holds {y.size} values but <x> {x.size}; expected one count per channel"
        )
    unit = r.text(r.find(simpledata, "xaxis", "axisunit"))
    return x, y, unit


def _idf_data(r: _Idf, spectrum):
    """(counts, first channel, energies or None, simulated, note) of the spectrum: its
    measured <data>, or SIMNRA's simulated spectrum when the measured counts are all zero
    or absent."""
    data = r.find(spectrum, "data")
    x, y, unit = _idf_simpledata(r, r.find(data, "simpledata"), "<data><simpledata>")
    simulated, note = False, None
    if y is None or not np.any(y):
        found = _idf_simulation(r, spectrum)
        if found is None:
            external = r.text(r.find(data, "datafile", "filename"))
            if y is None and external is not None:
                raise r.fail(
                    f"the counts are in another file ({external!r}); expected them in "
                    "<data><simpledata><y>"
                )
            what = "absent" if y is None else f"all {y.size} zero"
            raise r.fail(
                f"no measured counts (<data><simpledata><y> {what}) and no simulated spectrum; "
                "expected a spectrum"
            )
        x, y, unit, kind = found
        simulated = True
        note = (
            "the file holds no measured counts: the counts are the spectrum SIMNRA simulated "
            f"(simulation type {kind!r}), expected counts for the file's fluence"
        )
    where = "<data><simpledata><xaxis><axisunit>"
    unit_key = (unit or "").strip().lower()
    if x is None:
        return y, 0, None, simulated, _join(note, "no <x>: channels 0, 1, 2, ... assumed")
    if unit_key in _CHANNEL_UNITS or (not unit_key and _consecutive_integers(x)):
        _check_channel_numbers(r.path, x, None)
        return y, int(x[0]), None, simulated, note
    if unit_key in _UNITS["energy"][2]:
        energies = x * _UNITS["energy"][2][unit_key]
        _check_increasing(r.path, energies, "energy", "keV")
        mode = r.text(r.find(r.find(spectrum, "data"), "channelmode"))
        return (
            y,
            0,
            energies,
            simulated,
            _join(note, f"x axis in energy ({unit}, channel mode {mode or 'not stated'})"),
        )
    if not unit_key:
        raise r.fail(
            "<data><simpledata><x> neither consecutive channel numbers nor with a unit; "
            "expected channels or energies with <axisunit>"
        )
    raise r.fail(f"{where} {unit!r}; expected channel (#) or an energy unit (keV, MeV)")


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def _idf_simulation(r: _Idf, spectrum):
    """SIMNRA's total simulated spectrum (``<process><simulations><simulation>`` with
    ``<simulationtype>total``, or any other element named ``simulation...`` holding a
    ``<simpledata>``) with counts: (x, y, x-axis unit, type), or None."""
    for elem in spectrum.iter():
        if not isinstance(elem.tag, str) or not _local(elem.tag)[1].startswith("simulat"):
            continue
        simpledata = r.find(elem, "simpledata")
        if simpledata is None:
            continue
        kind = r.text(r.find(elem, "simulationtype")) or "total"
        if kind.lower() != "total":
            continue
        x, y, unit = _idf_simpledata(r, simpledata, f"<{_local(elem.tag)[1]}><simpledata>")
        if y is not None and np.any(y):
            return x, y, unit, kind
    return None


def _idf_layers(r: _Idf, sample) -> tuple[SampleLayer, ...]:
    layers_elem = r.find(sample, "structure", "layeredstructure", "layers")
    elems = r.children(layers_elem, "layer")
    if not elems:
        r.notes.append("no sample structure in the file")
        return ()
    layers, normalised = [], []
    for number, layer in enumerate(elems, start=1):
        where = f"<layer> {number}"
        thickness = r.quantity(
            r.find(layer, "layerthickness"), f"{where} <layerthickness>", "areal density"
        )
        if thickness is None or thickness < 0:
            raise r.fail(
                f"{where}: thickness {thickness}; expected <layerthickness> >= 0 in 1e15at/cm2"
            )
        amounts: dict[str, float] = {}
        for elem in r.children(r.find(layer, "layerelements"), "layerelement"):
            name = r.text(r.find(elem, "name"))
            if name is None:
                raise r.fail(f"{where}: a <layerelement> without <name>; expected one")
            value = r.number(r.find(elem, "concentration"), f"{where} {name} <concentration>")
            if value is None:
                value = 1.0
                r.notes.append(f"{where} {name}: no concentration, 1 assumed")
            amounts[name] = amounts.get(name, 0.0) + value
        if not amounts:
            raise r.fail(f"{where}: no <layerelement>; expected the layer's elements")
        total = sum(amounts.values())
        if total > 0 and abs(total - 1.0) > 1e-6:
            normalised.append(f"{number} ({total:g})")
        try:
            densities = layer_areal_densities(thickness, amounts)
        except ValueError as exc:
            raise r.fail(f"{where}: {exc}") from None
        layers.append(SampleLayer(densities, *_idf_roughness(r, layer, where)))
    if normalised:
        r.notes.append(
            f"concentrations normalised to sum 1 in layer(s) {', '.join(normalised)} (e.g. percent)"
        )
    return tuple(layers)


def _idf_roughness(r: _Idf, layer, where: str) -> tuple[float | None, str | None]:
    """(FWHM in TFU, distribution) of a layer's <layeruniformity> and SIMNRA roughness."""
    has = r.text(r.find(layer, "hasroughness", ns=SIMNRA_NAMESPACE))
    if has is not None and has.lower() == "false":
        return None, None
    fwhm = r.width(r.find(layer, "layeruniformity"), f"{where} <layeruniformity>", "areal density")
    if fwhm is None or fwhm <= 0:
        return None, None
    distribution = r.text(r.find(layer, "roughness", "distribution", ns=SIMNRA_NAMESPACE))
    if distribution is None or distribution.lower() == "none":
        r.notes.append(
            f"{where}: roughness {fwhm:g} TFU FWHM without a distribution (taken as Gamma)"
        )
        distribution = None
    elif distribution.lower() != "gamma":
        r.notes.append(
            f"{where}: roughness distribution {distribution!r} is not modelled (Gamma is); "
            "the layer is simulated smooth"
        )
    return fwhm, distribution


# ---------------------------------------------------------------------------------------
# compounds

#: "Si 1 O 2": element symbols each followed by a count, separated by spaces
_SPACED_FORMULA = re.compile(r"^(?:[A-Z][a-z]?\s+\d+(?:\.\d*)?\s*)+$")
_SPACED_PAIR = re.compile(r"([A-Z][a-z]?)\s+(\d+(?:\.\d*)?)")


def compound_atoms(name: str) -> dict[str, float]:
    """Atoms per formula unit of an element, isotope or compound name: ``"Si"``,
    ``"13C"``, ``"SiO2"``, ``"Co50Pt50"``, ``"Si 1 O 2"`` (pyIBA), ``"Co 1 Pt 1"``.

    Raises:
        ValueError: naming the name, for one that is not an element, isotope or formula.
    """
    text = name.strip()
    try:
        species(text, "layer element")
        return {text: 1.0}
    except UnknownSpeciesError:
        pass
    if _SPACED_FORMULA.match(text):
        atoms: dict[str, float] = {}
        for symbol, count in _SPACED_PAIR.findall(text):
            atoms[symbol] = atoms.get(symbol, 0.0) + float(count)
    else:
        import periodictable
        from periodictable.core import isisotope

        try:
            parsed = periodictable.formula(text).atoms
        except Exception:  # pyparsing and periodictable raise several types
            raise ValueError(
                f"{text!r}: expected an element, an isotope or a formula such as SiO2, "
                "Co50Pt50 or 'Si 1 O 2'"
            ) from None
        atoms = {}
        for atom, count in parsed.items():
            key = f"{atom.isotope}{atom.element.symbol}" if isisotope(atom) else atom.symbol
            atoms[key] = atoms.get(key, 0.0) + float(count)
    for symbol, count in atoms.items():
        try:
            species(symbol, f"{text!r}")
        except UnknownSpeciesError as exc:
            raise ValueError(f"{exc}; expected element symbols") from None
        if not (math.isfinite(count) and count >= 0):
            raise ValueError(f"{text!r}: {count:g} {symbol}; expected counts >= 0")
    if not atoms or sum(atoms.values()) <= 0:
        raise ValueError(f"{text!r}: no atoms; expected a formula such as SiO2")
    return atoms


def layer_areal_densities(
    thickness_tfu: float, concentrations: Mapping[str, float]
) -> dict[str, float]:
    """Areal density (1e15 atoms/cm², TFU) of every element of a layer of
    ``thickness_tfu`` atoms made of the elements or compounds in ``concentrations``
    (name -> amount).

    The concentration of a compound is the fraction of the layer's atoms that belong to it
    (an atomic fraction, as in IDF and SIMNRA; the amounts are normalised to sum 1, so
    percentages work).  A compound's atoms divide among its elements as in its formula:
    300 TFU of ``SiO2`` hold 100 TFU Si and 200 TFU O; a layer of 50 % ``SiO2`` and 50 %
    ``Si`` of 600 TFU holds Si 400, O 200.  Elements with zero amount are dropped (and the
    names of compounds with concentration 0 are not checked).

    Raises:
        ValueError: naming the compound: an unknown name, a negative or non-finite amount,
            all amounts zero.
    """
    for name, value in concentrations.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}: concentration {value:g}; expected a number >= 0")
    total = sum(concentrations.values())
    if total <= 0:
        raise ValueError(
            f"concentrations {dict(concentrations)} sum to 0; expected at least one > 0"
        )
    densities: dict[str, float] = {}
    for name, value in concentrations.items():
        if value == 0:
            continue
        atoms = compound_atoms(name)
        per_unit = sum(atoms.values())
        for element, count in atoms.items():
            amount = thickness_tfu * (value / total) * (count / per_unit)
            densities[element] = densities.get(element, 0.0) + amount
    return {element: amount for element, amount in densities.items() if amount > 0}


# ---------------------------------------------------------------------------------------
# the experiment


def _stated_mapping(spectrum: MeasuredSpectrum) -> dict[str, Any]:
    """The experiment sections the file states (no defaults)."""

    def kept(**items) -> dict[str, Any]:
        return {k: v for k, v in items.items() if v is not None}

    mapping: dict[str, Any] = {
        "beam": kept(
            ion=spectrum.ion,
            energy_keV=spectrum.beam_energy_keV,
            energy_spread_fwhm_keV=spectrum.beam_spread_fwhm_keV,
        ),
        "geometry": kept(
            type=spectrum.geometry,
            incidence_deg=spectrum.incidence_deg,
            scattering_deg=spectrum.scattering_deg,
            exit_deg=spectrum.exit_deg,
        ),
        "detector": kept(
            channels=spectrum.first_channel + spectrum.n_channels,
            calibration=None if spectrum.calibration is None else spectrum.calibration.as_mapping(),
            resolution_fwhm_keV=spectrum.resolution_fwhm_keV,
            solid_angle_msr=spectrum.solid_angle_msr,
            angular_spread_fwhm_deg=spectrum.angular_spread_fwhm_deg,
        ),
    }
    if spectrum.fluence is not None:
        mapping["fluence"] = spectrum.fluence
    if spectrum.layers:
        mapping["sample"] = {"layers": [_layer_mapping(layer) for layer in spectrum.layers]}
    return mapping


def _layer_mapping(layer: SampleLayer) -> dict[str, float]:
    """A layer of an experiment: its areal densities and, for a Gamma-distributed (or
    unnamed) roughness, ``roughness_tfu``, the standard deviation FWHM / 2.3548 (SIMNRA
    states the FWHM of its Gamma thickness distribution; :mod:`.fitmodel` takes σ)."""
    out = dict(layer.areal_densities)
    dist = (layer.roughness_distribution or "gamma").lower()
    if layer.roughness_fwhm_tfu and dist == "gamma":
        out["roughness_tfu"] = layer.roughness_fwhm_tfu / FWHM_PER_SIGMA
    return out


def _deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings merge key by key, anything else (a
    number, a list of layers) replaces."""
    merged = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _lookup(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _missing(spectrum: MeasuredSpectrum, merged: Mapping[str, Any]) -> list[str]:
    """What the experiment needs that neither the file nor the overrides give."""
    required = [
        (("beam", "ion"), "beam ion", "beam.ion"),
        (("beam", "energy_keV"), "beam energy", "beam.energy_keV"),
        (("geometry", "incidence_deg"), "incidence angle", "geometry.incidence_deg"),
        (("geometry", "scattering_deg"), "scattering angle", "geometry.scattering_deg"),
        (("detector", "calibration"), "detector calibration", "detector.calibration"),
        (
            ("detector", "resolution_fwhm_keV"),
            "detector resolution",
            "detector.resolution_fwhm_keV",
        ),
        (("sample", "layers"), "sample layers", "sample.layers"),
    ]
    problems = [
        f"no {what} in the file: give {key} in --experiment"
        for keys, what, key in required
        if _lookup(merged, *keys) is None
    ]
    if "fluence_times_solid_angle_sr" not in merged:
        if "fluence" not in merged:
            why = ""
            if spectrum.charge_uC is not None:
                why = f" (a charge of {spectrum.charge_uC:g} uC but no charge state)"
            elif spectrum.relative:
                why = " (the counts are relative: fluence 1 with a free scale)"
            problems.append(
                f"no fluence in the file{why}: give fluence (particles) or "
                "fluence_times_solid_angle_sr in --experiment"
            )
        if _lookup(merged, "detector", "solid_angle_msr") is None:
            problems.append(
                "no detector solid angle in the file: give detector.solid_angle_msr (or "
                "fluence_times_solid_angle_sr) in --experiment"
            )
    return problems


def _float_or_none(value: Any) -> float | None:
    from ...config.files import as_number

    value = as_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _default_cutoff(merged: Mapping[str, Any], first_channel: int) -> float | None:
    """The larger of 10 % of the beam energy and the energy of the first channel read
    (keV); None when the values needed are not numbers (the experiment check reports)."""
    energy = _float_or_none(_lookup(merged, "beam", "energy_keV"))
    if energy is None:
        return None
    cal = _lookup(merged, "detector", "calibration")
    values = [
        _float_or_none(_lookup(cal, key)) if isinstance(cal, Mapping) else None
        for key in ("offset_keV", "gain_keV_per_channel", "quadratic_keV_per_channel2")
    ]
    offset = values[0] or 0.0
    gain = values[1]
    quadratic = values[2] or 0.0
    first = offset + (gain or 0.0) * first_channel + quadratic * first_channel**2
    return max(0.1 * energy, first)


def experiment_mapping(
    spectrum: MeasuredSpectrum,
    *,
    overrides: Mapping[str, Any] | None = None,
    tilt: str = "towards",
    energy_cutoff_keV: float | None = None,
) -> dict[str, Any]:
    """The experiment (the nested mapping that
    :func:`~specinv.physics.rbs.experiment.experiment_from_dict` accepts) for ``spectrum``:
    what the file states, deep-merged with ``overrides`` (a mapping of the same shape, e.g.
    a user's experiment YAML; mappings merge key by key, lists such as ``sample.layers``
    replace).

    * ``detector.channels`` = first channel + channels read (the simulator starts at
      channel 0);
    * ``geometry.exit_deg``: stated (file or overrides), else derived from the merged
      geometry with ``tilt`` (:func:`derived_exit_angle_deg`; not for "general");
    * ``energy_cutoff_keV``: the argument, else the overrides', else the larger of 10 % of
      the beam energy and the energy of the first channel read;
    * ``fluence`` is dropped when the overrides give ``fluence_times_solid_angle_sr``.

    A layer's roughness becomes ``roughness_tfu`` (σ = FWHM / 2.3548) when its distribution
    is Gamma or unnamed; other distributions (SIMNRA's from a file) are left out, with a note
    of the reader.

    Raises:
        MeasuredFileError: naming the file and every key that neither the file nor the
            overrides give ("no detector calibration in the file: give
            detector.calibration in --experiment"), or what
            :func:`~specinv.physics.rbs.experiment.experiment_from_dict` refuses.
        ValueError: ``tilt`` is not "towards" or "away".
    """
    _check_tilt(tilt)
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides: expected a mapping, got {type(overrides).__name__}")
    merged = _deep_merge(_stated_mapping(spectrum), overrides)
    if "fluence_times_solid_angle_sr" in overrides and "fluence" not in overrides:
        merged.pop("fluence", None)
    problems = _missing(spectrum, merged)
    if problems:
        raise _error(spectrum.path, "; ".join(problems))
    geometry = merged["geometry"]
    if isinstance(geometry, Mapping) and geometry.get("exit_deg") is None:
        kind = geometry.get("type", "IBM")
        alpha = _float_or_none(geometry.get("incidence_deg"))
        theta = _float_or_none(geometry.get("scattering_deg"))
        if kind in ("IBM", "Cornell") and alpha is not None and theta is not None:
            geometry["exit_deg"] = derived_exit_angle_deg(kind, alpha, theta, tilt)
    if energy_cutoff_keV is not None:
        merged["energy_cutoff_keV"] = energy_cutoff_keV
    elif "energy_cutoff_keV" not in merged:
        cutoff = _default_cutoff(merged, spectrum.first_channel)
        if cutoff is not None:
            merged["energy_cutoff_keV"] = cutoff
    try:
        experiment_from_dict(merged)
    except ExperimentError as exc:
        raise _error(
            spectrum.path, f"{exc} (in the experiment read from the file and the overrides)"
        ) from None
    return merged
