"""Typed, validated description of an RBS experiment: setup, physics options and sample.

An experiment file (YAML or JSON) looks like::

    beam:
      ion: 4He                 # any isotope (4He, 3He, 1H, 7Li ...) or element (main isotope)
      energy_keV: 3000
      energy_spread_fwhm_keV: 0
    geometry:
      type: IBM                # IBM | Cornell | general (needs azimuth_deg)
      incidence_deg: 0         # alpha, from the surface normal
      scattering_deg: 165      # theta
      # exit_deg: 15           # beta; derived from type when omitted
    detector:
      channels: 1024
      calibration: {offset_keV: 0, gain_keV_per_channel: 3.0, quadratic_keV_per_channel2: 0}
      resolution_fwhm_keV: 15
      solid_angle_msr: 10
    fluence: 1.0e13            # incident particles (or give fluence_times_solid_angle_sr)
    # detector.pileup_probability: 0.001   # optional: first-order pile-up
    # background: {flat_counts: 2, low_energy_counts: 50}   # optional, counts per channel
    energy_cutoff_keV: 50
    physics:
      screening: andersen      # none | andersen | lecuyer
      straggling: bohr         # none | bohr
      nuclear_stopping: true
    sample:
      layers:                  # surface first; areal densities in 1e15 atoms/cm2 (TFU)
        - {W: 1000, D: 3000}
        - {W: 4000, D: 500}
        # or a thickness and relative amounts, and a roughness (standard deviation of the
        # thickness, Gamma distribution) in either form:
        # - {thickness_tfu: 6500, composition: {Si: 1, O: 2}, roughness_tfu: 100}

Every value is checked on construction; errors are :class:`ExperimentError` naming the
file (when known), the key and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ...config.errors import ConfigError
from ...config.files import as_number, load_mapping_file
from .isotopes import Isotope, Species, UnknownSpeciesError, ion, species
from .kinematics import exit_angle
from .stopping import SRIM_Z_MAX, SRIM_Z_MIN


class ExperimentError(ValueError):
    """A bad value in an experiment description (the message names key and expectation)."""


SCREENINGS = ("none", "andersen", "lecuyer")
STRAGGLINGS = ("none", "bohr")
GEOMETRIES = ("IBM", "Cornell", "general")

# Limits on the work a setup implies.  Memory and time of a simulation grow with them, and a
# mistyped value (a gain in MeV, 1e-9 for 1e-3) would otherwise only fail deep inside one
# (6.6 TB for a gain of 1e-9 keV/channel).  Real measurements stay far below: gains of
# 0.1-10 keV/channel, up to 16384 channels and resolutions of 1-100 keV FWHM (at most 1000
# channels), ions up to ~100 MeV.
#: channels of the detector, and channel edges from the energy cut-off to the last channel
MAX_CHANNELS = 1 << 20
#: detector resolution (and beam energy spread) FWHM in channels, at the smallest local gain:
#: the Gaussian smoothing works on windows of gaussian_cutoff_sigmas σ around every node
MAX_BROADENING_CHANNELS = 10_000
#: numerics upper bounds (defaults 64, 4.5 and 25)
MAX_NODES_PER_LAYER = 10_000
MAX_GAUSSIAN_CUTOFF_SIGMAS = 10.0
MAX_GRID_POINTS_PER_DECADE = 1000


def _number(
    value: Any,
    key: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    integer: bool = False,
) -> float:
    # a quoted number ("3000"), or 3e3 read by a YAML 1.1 parser, is a number
    value = as_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExperimentError(f"{key}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ExperimentError(f"{key}: expected a finite number, got {value!r}")
    if integer and int(value) != value:
        raise ExperimentError(f"{key}: expected an integer, got {value!r}")
    if positive and value <= 0:
        raise ExperimentError(f"{key}: expected a number > 0, got {value!r}")
    if nonnegative and value < 0:
        raise ExperimentError(f"{key}: expected a number >= 0, got {value!r}")
    return int(value) if integer else float(value)


def _covered(resolve, name: str, key: str):
    """``resolve(name, key)`` (a species or an ion), refused when the name is unknown or its
    atomic number lies outside the stopping tables."""
    try:
        found = resolve(str(name), key)
    except UnknownSpeciesError as exc:
        raise ExperimentError(str(exc)) from None
    if not SRIM_Z_MIN <= found.Z <= SRIM_Z_MAX:
        raise ExperimentError(
            f"{key}: {str(name)!r} has Z = {found.Z}; expected Z in {SRIM_Z_MIN}..{SRIM_Z_MAX}, "
            f"the elements that the SRIM-2013 stopping tables cover"
        )
    return found


def sample_species(name: str, key: str) -> Species:
    """A sample constituent (element or isotope name) that the simulator covers.

    Raises:
        ExperimentError: naming ``key`` (e.g. ``sample.layers[0].W``) for an unknown name or
            an element outside Z = 1..92 (SRIM-2013 stopping).
    """
    return _covered(species, name, key)


def beam_ion(name: str, key: str = "beam.ion") -> Isotope:
    """The projectile (isotope, or element: its main isotope) if the simulator covers it.

    Raises:
        ExperimentError: naming ``key`` for an unknown name or an element outside
            Z = 1..92 (SRIM-2013 stopping).
    """
    return _covered(ion, name, key)


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ExperimentError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class PhysicsOptions:
    """Which physics the simulator includes."""

    screening: str = "andersen"
    straggling: str = "bohr"
    nuclear_stopping: bool = True

    def __post_init__(self):
        _choice(self.screening, "physics.screening", SCREENINGS)
        _choice(self.straggling, "physics.straggling", STRAGGLINGS)
        if not isinstance(self.nuclear_stopping, bool):
            raise ExperimentError(
                f"physics.nuclear_stopping: expected true or false, got {self.nuclear_stopping!r}"
            )


@dataclass(frozen=True)
class Numerics:
    """Discretisation of the simulator (defaults meet the JaBS reference tolerance).

    Attributes:
        piece_width_keV: largest width in detected energy of the pieces between the depth
            nodes of a scattering isotope in a layer (the spectrum is piecewise linear
            between nodes).
        piece_relative_width: largest width of a piece relative to its detected energy
            (pieces get narrower at low energy, where the yield varies like 1/S(E)).
        max_nodes_per_layer: upper bound on the nodes of one isotope in one layer.
        gaussian_cutoff_sigmas: Gaussian tails beyond this many σ are dropped.
        isotope_merge_sigmas: isotopes of an element are simulated as one channel while the
            spread of their K·E_beam stays below this fraction of the detector σ (their
            spread is added to the broadening); 0 simulates every isotope separately.
        grid_points_per_decade: density of the ln(E) grid of stopping and range tables
            (cubic Hermite, error ∝ h⁴: at 25 per decade the 20 JaBS reference spectra
            change by χ² ≤ 0.04 in total against 50 per decade, and the tables cost half).

    Upper bounds (they bound the work of a simulation): ``max_nodes_per_layer`` <=
    :data:`MAX_NODES_PER_LAYER` (10000), ``gaussian_cutoff_sigmas`` <=
    :data:`MAX_GAUSSIAN_CUTOFF_SIGMAS` (10: the tails beyond are below 1e-22),
    ``grid_points_per_decade`` <= :data:`MAX_GRID_POINTS_PER_DECADE` (1000).
    """

    piece_width_keV: float = 100.0
    piece_relative_width: float = 0.2
    max_nodes_per_layer: int = 64
    gaussian_cutoff_sigmas: float = 4.5
    isotope_merge_sigmas: float = 0.35
    grid_points_per_decade: int = 25

    def __post_init__(self):
        _number(self.piece_width_keV, "numerics.piece_width_keV", positive=True)
        r = _number(self.piece_relative_width, "numerics.piece_relative_width", positive=True)
        if r > 1:
            raise ExperimentError(f"numerics.piece_relative_width: expected <= 1, got {r}")
        n = _number(
            self.max_nodes_per_layer, "numerics.max_nodes_per_layer", positive=True, integer=True
        )
        if not 2 <= n <= MAX_NODES_PER_LAYER:
            raise ExperimentError(
                f"numerics.max_nodes_per_layer: expected 2 ... {MAX_NODES_PER_LAYER} (nodes "
                f"of one isotope in one layer), got {n}"
            )
        c = _number(self.gaussian_cutoff_sigmas, "numerics.gaussian_cutoff_sigmas", positive=True)
        if not 3 <= c <= MAX_GAUSSIAN_CUTOFF_SIGMAS:
            raise ExperimentError(
                f"numerics.gaussian_cutoff_sigmas: expected 3 ... {MAX_GAUSSIAN_CUTOFF_SIGMAS:g}"
                f", got {c}"
            )
        m = _number(self.isotope_merge_sigmas, "numerics.isotope_merge_sigmas", nonnegative=True)
        if m > 1:
            raise ExperimentError(f"numerics.isotope_merge_sigmas: expected <= 1, got {m}")
        g = _number(
            self.grid_points_per_decade,
            "numerics.grid_points_per_decade",
            positive=True,
            integer=True,
        )
        if not 10 <= g <= MAX_GRID_POINTS_PER_DECADE:
            raise ExperimentError(
                f"numerics.grid_points_per_decade: expected 10 ... {MAX_GRID_POINTS_PER_DECADE}"
                f", got {g}"
            )


@dataclass(frozen=True)
class Detector:
    """Energy-dispersive detector: calibration E(χ) = offset + gain·χ + quadratic·χ².

    Channel i collects detected energies in [E(i), E(i+1)).  At most :data:`MAX_CHANNELS`
    (1048576) channels, and a resolution of at most :data:`MAX_BROADENING_CHANNELS` (10000)
    channels FWHM at the smallest local gain dE/dχ of the calibration.
    """

    channels: int
    gain_keV_per_channel: float
    resolution_fwhm_keV: float
    offset_keV: float = 0.0
    quadratic_keV_per_channel2: float = 0.0
    #: probability that a detected particle piles up with another (first-order pile-up)
    pileup_probability: float = 0.0
    #: FWHM of the scattering angles the detector sees (its aperture), degrees: each
    #: isotope's signal is broadened by E·(dK/dθ)·σ_θ (the kinematic part of geometric
    #: straggling; the spread of path lengths is not modelled)
    angular_spread_fwhm_deg: float = 0.0

    def __post_init__(self):
        n = _number(self.channels, "detector.channels", positive=True, integer=True)
        pile = _number(self.pileup_probability, "detector.pileup_probability", nonnegative=True)
        spread = _number(
            self.angular_spread_fwhm_deg, "detector.angular_spread_fwhm_deg", nonnegative=True
        )
        if spread > 30.0:
            raise ExperimentError(
                f"detector.angular_spread_fwhm_deg: expected at most 30 degrees, got {spread}"
            )
        if pile >= 0.5:
            raise ExperimentError(
                f"detector.pileup_probability: expected below 0.5 (first-order pile-up), got {pile}"
            )
        if n > MAX_CHANNELS:
            raise ExperimentError(f"detector.channels: expected at most {MAX_CHANNELS}, got {n}")
        g = _number(
            self.gain_keV_per_channel, "detector.calibration.gain_keV_per_channel", positive=True
        )
        _number(self.offset_keV, "detector.calibration.offset_keV")
        q = _number(
            self.quadratic_keV_per_channel2, "detector.calibration.quadratic_keV_per_channel2"
        )
        fwhm = _number(self.resolution_fwhm_keV, "detector.resolution_fwhm_keV", positive=True)
        slope_end = self.gain_keV_per_channel + 2.0 * q * self.channels
        if slope_end <= 0:
            raise ExperimentError(
                "detector.calibration: the quadratic term makes the calibration decrease "
                f"before channel {self.channels}; expected gain + 2*quadratic*channels > 0"
            )
        _check_broadening(
            "detector.resolution_fwhm_keV", "resolution", fwhm, *_smallest_gain(g, q, n)
        )

    @property
    def smallest_gain(self) -> tuple[float, float]:
        """Smallest local gain dE/dχ (keV/channel) on channels 0 … ``channels`` and the
        channel coordinate χ where it is reached."""
        return _smallest_gain(
            self.gain_keV_per_channel, self.quadratic_keV_per_channel2, self.channels
        )

    def channel_energy(self, chi):
        """Energy (keV) at channel coordinate χ (channel i spans χ ∈ [i, i+1))."""
        return (
            self.offset_keV
            + self.gain_keV_per_channel * chi
            + (self.quadratic_keV_per_channel2 * chi * chi)
        )

    def channel_coordinate(self, energy_keV):
        """Inverse calibration χ(E) (accepts floats, numpy arrays and torch tensors)."""
        q, g = self.quadratic_keV_per_channel2, self.gain_keV_per_channel
        de = energy_keV - self.offset_keV
        if q == 0.0:
            return de / g
        # stable root of q χ² + g χ − ΔE = 0 on the increasing branch
        disc = g * g + 4.0 * q * de
        disc = disc.clamp_min(0.0) if hasattr(disc, "clamp_min") else max(disc, 0.0)
        return 2.0 * de / (g + disc**0.5)


def _smallest_gain(gain: float, quadratic: float, channels: int) -> tuple[float, float]:
    """Smallest local gain gain + 2·quadratic·χ (keV/channel) for χ in [0, channels], and
    that χ (the local gain is linear in χ: an end)."""
    end = gain + 2.0 * quadratic * channels
    return (end, float(channels)) if end < gain else (gain, 0.0)


def _check_broadening(key: str, what: str, fwhm_keV: float, gain: float, chi: float) -> None:
    """Refuse a Gaussian broadening (FWHM, keV) that spans more than
    :data:`MAX_BROADENING_CHANNELS` channels at the smallest local gain ``gain``
    (keV/channel, reached at channel coordinate ``chi``)."""
    width = fwhm_keV / gain
    if width > MAX_BROADENING_CHANNELS:
        where = "" if chi == 0.0 else f" (gain + 2*quadratic*channel at channel {chi:g})"
        raise ExperimentError(
            f"{key}, detector.calibration.gain_keV_per_channel: a {what} of {fwhm_keV:g} keV "
            f"FWHM spans {width:.3g} channels at a gain of {gain:g} keV/channel{where}; at most "
            f"{MAX_BROADENING_CHANNELS} channels are supported (the Gaussian smoothing works "
            f"on windows of channels around every depth node)"
        )


@dataclass(frozen=True)
class Setup:
    """Everything about a measurement except the sample.

    Besides the :class:`Detector`'s limits: a beam energy spread of at most
    :data:`MAX_BROADENING_CHANNELS` (10000) channels FWHM at the smallest local gain, and at
    most :data:`MAX_CHANNELS` (1048576) channel edges from the energy cut-off (below channel
    0 when the calibration's offset is above the cut-off) to the last channel.
    """

    beam_energy_keV: float
    scattering_deg: float
    detector: Detector
    fluence_times_solid_angle_sr: float
    energy_cutoff_keV: float
    ion: str = "4He"
    beam_spread_fwhm_keV: float = 0.0
    incidence_deg: float = 0.0
    geometry: str = "IBM"
    azimuth_deg: float = 0.0
    exit_deg: float | None = None
    physics: PhysicsOptions = field(default_factory=PhysicsOptions)
    numerics: Numerics = field(default_factory=Numerics)
    #: background: flat (counts per channel) and a low-energy term (counts per channel at
    #: the cut-off energy, falling as 1/E²), on the channels above the cut-off
    background_counts: float = 0.0
    background_low_energy_counts: float = 0.0

    def __post_init__(self):
        _number(self.background_counts, "background.flat_counts", nonnegative=True)
        _number(self.background_low_energy_counts, "background.low_energy_counts", nonnegative=True)
        beam_ion(self.ion, "beam.ion")
        e0 = _number(self.beam_energy_keV, "beam.energy_keV", positive=True)
        _number(self.beam_spread_fwhm_keV, "beam.energy_spread_fwhm_keV", nonnegative=True)
        _number(self.fluence_times_solid_angle_sr, "fluence_times_solid_angle_sr", positive=True)
        _choice(self.geometry, "geometry.type", GEOMETRIES)
        alpha = _number(self.incidence_deg, "geometry.incidence_deg")
        theta = _number(self.scattering_deg, "geometry.scattering_deg")
        _number(self.azimuth_deg, "geometry.azimuth_deg")
        if not 0.0 <= alpha < 90.0:
            raise ExperimentError(
                f"geometry.incidence_deg: expected 0 <= alpha < 90 (beam entering through the "
                f"surface), got {alpha}"
            )
        if not 0.0 < theta < 180.0:
            raise ExperimentError(f"geometry.scattering_deg: expected 0 < theta < 180, got {theta}")
        beta = self.exit_angle_deg
        if not 0.0 <= beta < 90.0:
            raise ExperimentError(
                f"geometry.exit_deg: the detector must see the surface (0 <= beta < 90), got "
                f"beta = {beta:.6g} deg (alpha={alpha}, theta={theta}, type={self.geometry})"
            )
        cut = _number(self.energy_cutoff_keV, "energy_cutoff_keV", positive=True)
        if cut >= e0:
            raise ExperimentError(
                f"energy_cutoff_keV: expected below the beam energy {e0} keV, got {cut}"
            )
        if isinstance(self.detector, Detector):
            self._check_work(cut)
        if not isinstance(self.physics, PhysicsOptions):
            raise ExperimentError("physics: expected a PhysicsOptions")

    def _check_work(self, cut: float) -> None:
        """The limits that involve the beam or the cut-off (``cut``, keV) as well as the
        detector: the beam energy spread in channels, and the channel edges from the cut-off
        (below channel 0 when the calibration's offset is above it) to the last channel."""
        det = self.detector
        spread = _number(self.beam_spread_fwhm_keV, "beam.energy_spread_fwhm_keV")
        _check_broadening(
            "beam.energy_spread_fwhm_keV", "beam energy spread", spread, *det.smallest_gain
        )
        chi_cut = float(det.channel_coordinate(cut))
        edges = det.channels + 1 - min(0, math.floor(chi_cut) - 1)
        if edges > MAX_CHANNELS:
            raise ExperimentError(
                f"energy_cutoff_keV, detector.calibration: the spectrum is computed on the "
                f"channel edges from the cut-off at {cut:g} keV (channel "
                f"{chi_cut:.4g}, below channel 0 at offset_keV = {det.offset_keV:g} with "
                f"gain_keV_per_channel = {det.gain_keV_per_channel:g}) to channel "
                f"{det.channels}: {edges:.4g} edges; at most {MAX_CHANNELS} are supported"
            )

    @property
    def exit_angle_deg(self) -> float:
        """Exit angle β from the surface normal, degrees."""
        if self.exit_deg is not None:
            return _number(self.exit_deg, "geometry.exit_deg")
        return math.degrees(
            exit_angle(
                math.radians(self.incidence_deg),
                math.radians(self.scattering_deg),
                self.geometry,
                math.radians(self.azimuth_deg),
            )
        )


@dataclass(frozen=True)
class Layer:
    """One layer: areal density (TFU) per element or isotope, e.g. ``{"W": 1000, "D": 3000}``,
    and the standard deviation of its thickness (TFU; a Gamma distribution of the thickness,
    as SIMNRA's and JaBS's roughness; 0: smooth)."""

    areal_densities: Mapping[str, float]
    roughness_tfu: float = 0.0

    @property
    def thickness_tfu(self) -> float:
        return float(sum(self.areal_densities.values()))


#: the keys of a layer given as thickness and composition instead of element amounts
_LAYER_KEYS = ("thickness_tfu", "composition", "roughness_tfu")


def validate_layers(
    layers: Sequence[Mapping[str, Any]], key: str = "sample.layers"
) -> tuple[Layer, ...]:
    """Check a list of layers.

    A layer is a mapping of element/isotope names to areal densities (1e15 at/cm², finite,
    >= 0), e.g. ``{W: 1000, D: 3000}``, or a thickness and relative amounts, e.g.
    ``{thickness_tfu: 6500, composition: {Si: 1, O: 2}}``; either form may add
    ``roughness_tfu`` (standard deviation of the thickness, >= 0).
    """
    if not isinstance(layers, Sequence) or isinstance(layers, (str, bytes)) or not layers:
        raise ExperimentError(f"{key}: expected a non-empty list of layers, got {layers!r}")
    out = []
    for i, layer in enumerate(layers):
        lkey = f"{key}[{i}]"
        if isinstance(layer, Layer):
            layer = {**layer.areal_densities, "roughness_tfu": layer.roughness_tfu}
        if not isinstance(layer, Mapping) or not layer:
            raise ExperimentError(
                f"{lkey}: expected a mapping of element -> areal density (1e15 at/cm2), "
                f"got {layer!r}"
            )
        layer = dict(layer)
        roughness = _number(
            layer.pop("roughness_tfu", 0.0), f"{lkey}.roughness_tfu", nonnegative=True
        )
        if "composition" in layer or "thickness_tfu" in layer:
            _check_keys(layer, _LAYER_KEYS, lkey)
            thickness = _number(
                _get(layer, "thickness_tfu", lkey), f"{lkey}.thickness_tfu", nonnegative=True
            )
            composition = _get(layer, "composition", lkey)
            if not isinstance(composition, Mapping) or not composition:
                raise ExperimentError(
                    f"{lkey}.composition: expected a mapping of element -> relative amount, "
                    f"got {composition!r}"
                )
            amounts = {
                str(n): _number(v, f"{lkey}.composition.{n}", nonnegative=True)
                for n, v in composition.items()
            }
            total = sum(amounts.values())
            if total <= 0:
                raise ExperimentError(
                    f"{lkey}.composition: expected at least one amount > 0, got {composition!r}"
                )
            layer = {n: thickness * v / total for n, v in amounts.items()}
        clean = {}
        for name, value in layer.items():
            sample_species(str(name), f"{lkey}.{name}")
            clean[str(name)] = _number(
                value, f"{lkey}.{name} (areal density, 1e15 at/cm2)", nonnegative=True
            )
        out.append(Layer(clean, roughness))
    return tuple(out)


@dataclass(frozen=True)
class Experiment:
    """A setup and a sample (layers, surface first)."""

    setup: Setup
    layers: tuple[Layer, ...]

    def __post_init__(self):
        validate_layers(self.layers)

    @property
    def structure(self) -> tuple[tuple[str, ...], ...]:
        """Element/isotope names per layer: the layout of the parameter vector."""
        return tuple(tuple(layer.areal_densities) for layer in self.layers)

    @property
    def areal_densities(self) -> list[float]:
        """The parameter vector (TFU), layer by layer in the order of :attr:`structure`."""
        return [v for layer in self.layers for v in layer.areal_densities.values()]

    def with_areal_densities(self, values: Sequence[float]) -> Experiment:
        names = [n for layer in self.structure for n in layer]
        if len(values) != len(names):
            raise ExperimentError(f"expected {len(names)} areal densities, got {len(values)}")
        it = iter(values)
        layers = tuple(
            Layer({n: float(next(it)) for n in names}, layer.roughness_tfu)
            for names, layer in zip(self.structure, self.layers, strict=True)
        )
        return replace(self, layers=layers)


# ---------------------------------------------------------------------------------------
# reading from dictionaries and files


def _section(data: Mapping, key: str, required: bool = True) -> Mapping:
    if key not in data:
        if required:
            raise ExperimentError(f"{key}: missing section")
        return {}
    value = data[key]
    if not isinstance(value, Mapping):
        raise ExperimentError(f"{key}: expected a mapping, got {value!r}")
    return value


def _check_keys(section: Mapping, allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ExperimentError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; expected some of "
            f"{', '.join(allowed)}"
        )


def _get(section: Mapping, key: str, where: str, default: Any = ...):
    if key in section:
        return section[key]
    if default is ...:
        raise ExperimentError(f"{where}.{key}: missing")
    return default


def setup_from_dict(data: Mapping[str, Any]) -> Setup:
    """Build a :class:`Setup` from the nested dictionary of an experiment file."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"experiment: expected a mapping at the top level, got {data!r}")
    beam = _section(data, "beam")
    _check_keys(beam, ["ion", "energy_keV", "energy_spread_fwhm_keV"], "beam")
    geo = _section(data, "geometry")
    _check_keys(
        geo, ["type", "incidence_deg", "scattering_deg", "exit_deg", "azimuth_deg"], "geometry"
    )
    det = _section(data, "detector")
    _check_keys(
        det,
        [
            "channels",
            "calibration",
            "resolution_fwhm_keV",
            "solid_angle_msr",
            "pileup_probability",
            "angular_spread_fwhm_deg",
        ],
        "detector",
    )
    background = _section(data, "background", required=False)
    _check_keys(background, ["flat_counts", "low_energy_counts"], "background")
    cal = _section(det, "calibration")
    _check_keys(
        cal,
        ["offset_keV", "gain_keV_per_channel", "quadratic_keV_per_channel2"],
        "detector.calibration",
    )
    phys = _section(data, "physics", required=False)
    _check_keys(phys, ["screening", "straggling", "nuclear_stopping"], "physics")
    num = _section(data, "numerics", required=False)
    _check_keys(
        num,
        [
            "piece_width_keV",
            "piece_relative_width",
            "max_nodes_per_layer",
            "gaussian_cutoff_sigmas",
            "isotope_merge_sigmas",
            "grid_points_per_decade",
        ],
        "numerics",
    )

    if "fluence_times_solid_angle_sr" in data:
        if "fluence" in data:
            raise ExperimentError(
                "fluence: give either fluence (with detector.solid_angle_msr) or "
                "fluence_times_solid_angle_sr, not both"
            )
        q_omega = _number(
            data["fluence_times_solid_angle_sr"], "fluence_times_solid_angle_sr", positive=True
        )
    else:
        fluence = _number(_get(data, "fluence", "experiment"), "fluence", positive=True)
        omega = _number(
            _get(det, "solid_angle_msr", "detector"), "detector.solid_angle_msr", positive=True
        )
        q_omega = fluence * omega * 1e-3

    detector = Detector(
        channels=_number(
            _get(det, "channels", "detector"), "detector.channels", positive=True, integer=True
        ),
        gain_keV_per_channel=_number(
            _get(cal, "gain_keV_per_channel", "detector.calibration"),
            "detector.calibration.gain_keV_per_channel",
        ),
        offset_keV=_number(cal.get("offset_keV", 0.0), "detector.calibration.offset_keV"),
        quadratic_keV_per_channel2=_number(
            cal.get("quadratic_keV_per_channel2", 0.0),
            "detector.calibration.quadratic_keV_per_channel2",
        ),
        resolution_fwhm_keV=_number(
            _get(det, "resolution_fwhm_keV", "detector"), "detector.resolution_fwhm_keV"
        ),
        pileup_probability=_number(
            det.get("pileup_probability", 0.0), "detector.pileup_probability"
        ),
        angular_spread_fwhm_deg=_number(
            det.get("angular_spread_fwhm_deg", 0.0), "detector.angular_spread_fwhm_deg"
        ),
    )
    exit_deg = geo.get("exit_deg")
    return Setup(
        ion=str(beam.get("ion", "4He")),
        beam_energy_keV=_number(_get(beam, "energy_keV", "beam"), "beam.energy_keV"),
        beam_spread_fwhm_keV=_number(
            beam.get("energy_spread_fwhm_keV", 0.0), "beam.energy_spread_fwhm_keV"
        ),
        geometry=geo.get("type", "IBM"),
        incidence_deg=_number(geo.get("incidence_deg", 0.0), "geometry.incidence_deg"),
        scattering_deg=_number(_get(geo, "scattering_deg", "geometry"), "geometry.scattering_deg"),
        exit_deg=None if exit_deg is None else _number(exit_deg, "geometry.exit_deg"),
        azimuth_deg=_number(geo.get("azimuth_deg", 0.0), "geometry.azimuth_deg"),
        detector=detector,
        fluence_times_solid_angle_sr=q_omega,
        energy_cutoff_keV=_number(
            _get(data, "energy_cutoff_keV", "experiment"), "energy_cutoff_keV"
        ),
        physics=PhysicsOptions(**phys),
        background_counts=_number(background.get("flat_counts", 0.0), "background.flat_counts"),
        background_low_energy_counts=_number(
            background.get("low_energy_counts", 0.0), "background.low_energy_counts"
        ),
        numerics=Numerics(
            **{
                k: _number(v, f"numerics.{k}", integer=k in _INTEGER_NUMERICS)
                for k, v in num.items()
            }
        ),
    )


#: the keys of ``numerics`` that are whole numbers
_INTEGER_NUMERICS = ("max_nodes_per_layer", "grid_points_per_decade")


_TOP_KEYS = [
    "background",
    "beam",
    "geometry",
    "detector",
    "fluence",
    "fluence_times_solid_angle_sr",
    "energy_cutoff_keV",
    "physics",
    "numerics",
    "sample",
]


def experiment_from_dict(data: Mapping[str, Any]) -> Experiment:
    """Build an :class:`Experiment` (setup + ``sample.layers``) from a dictionary."""
    if not isinstance(data, Mapping):
        raise ExperimentError(f"experiment: expected a mapping at the top level, got {data!r}")
    _check_keys(data, _TOP_KEYS, "experiment")
    setup = setup_from_dict(data)
    sample = _section(data, "sample")
    _check_keys(sample, ["layers"], "sample")
    layers = validate_layers(_get(sample, "layers", "sample"))
    return Experiment(setup=setup, layers=layers)


def setup_from_fields(fields: Mapping[str, Any]) -> Setup:
    """A :class:`Setup` from its fields as :func:`dataclasses.asdict` gives them (e.g. the
    setup a dataset's attributes record); every value is checked as on construction."""
    f = dict(fields)
    f["detector"] = Detector(**f["detector"])
    f["physics"] = PhysicsOptions(**f.get("physics", {}))
    f["numerics"] = Numerics(**f.get("numerics", {}))
    return Setup(**f)


def experiment_to_dict(experiment: Experiment, solid_angle_msr: float | None = None) -> dict:
    """The nested mapping of an experiment file that :func:`experiment_from_dict` reads back
    into ``experiment`` (the exit angle written out; the fluence as ``fluence`` with the
    detector's solid angle when ``solid_angle_msr`` is given, else as
    ``fluence_times_solid_angle_sr``)."""
    s, det = experiment.setup, experiment.setup.detector
    geometry = {
        "type": s.geometry,
        "incidence_deg": s.incidence_deg,
        "scattering_deg": s.scattering_deg,
        "exit_deg": s.exit_angle_deg,
    }
    if s.geometry == "general":
        geometry["azimuth_deg"] = s.azimuth_deg
    detector = {
        "channels": det.channels,
        "calibration": {
            "offset_keV": det.offset_keV,
            "gain_keV_per_channel": det.gain_keV_per_channel,
            "quadratic_keV_per_channel2": det.quadratic_keV_per_channel2,
        },
        "resolution_fwhm_keV": det.resolution_fwhm_keV,
    }
    if det.pileup_probability:
        detector["pileup_probability"] = det.pileup_probability
    if det.angular_spread_fwhm_deg:
        detector["angular_spread_fwhm_deg"] = det.angular_spread_fwhm_deg
    out: dict[str, Any] = {
        "beam": {
            "ion": s.ion,
            "energy_keV": s.beam_energy_keV,
            "energy_spread_fwhm_keV": s.beam_spread_fwhm_keV,
        },
        "geometry": geometry,
        "detector": detector,
    }
    if solid_angle_msr:
        detector["solid_angle_msr"] = solid_angle_msr
        out["fluence"] = s.fluence_times_solid_angle_sr / (solid_angle_msr * 1e-3)
    else:
        out["fluence_times_solid_angle_sr"] = s.fluence_times_solid_angle_sr
    out["energy_cutoff_keV"] = s.energy_cutoff_keV
    if s.background_counts or s.background_low_energy_counts:
        out["background"] = {
            "flat_counts": s.background_counts,
            "low_energy_counts": s.background_low_energy_counts,
        }
    out["physics"] = asdict(s.physics)
    out["numerics"] = asdict(s.numerics)
    layers = []
    for layer in experiment.layers:
        entry = {name: float(v) for name, v in layer.areal_densities.items()}
        if layer.roughness_tfu:
            entry["roughness_tfu"] = float(layer.roughness_tfu)
        layers.append(entry)
    out["sample"] = {"layers": layers}
    return out


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment from a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    The file is read strictly (:func:`specinv.config.files.load_mapping_file`: UTF-8 text, no
    duplicate keys, bounded nesting and aliases, YAML 1.2 numbers such as ``3e3``).  Errors
    name the file, the key and what was expected.
    """
    try:
        data = load_mapping_file(path, "experiment file (YAML or JSON)")
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from None
    try:
        return experiment_from_dict(data)
    except ExperimentError as exc:
        raise ExperimentError(f"{path}: {exc}") from None
