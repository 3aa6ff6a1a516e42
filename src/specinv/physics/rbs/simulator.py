"""Batched, differentiable RBS forward simulator.

``RBSSimulator(setup, structure).simulate(areal_densities)`` maps a batch of samples (the
areal density of every element in every layer, 1e15 atoms/cm²) to expected counts per
detector channel.  Everything after construction is vectorised torch code: one call handles
B samples with the same setup and layer/element structure, with no Python loop over samples.
That code is the one derivatives flow through and the one a GPU runs; float64 simulations
on a CPU without tracked derivatives run the compiled version of the same steps instead
(:mod:`.forward_kernel`: 5-6x faster per spectrum batched, 17-33x for one spectrum; equal to
~1e-12 of the largest channel).

Model (per sample; the README's "The RBS model" gives the physics, the tests the checks):

* Stopping of a layer: Bragg's rule over its elements, SRIM-2013 electronic stopping
  (lunasrim) plus ZBL universal nuclear stopping; range and straggling tables per layer
  (:mod:`.tables`) integrate the energy loss and straggling exactly up to the O(h⁴) error
  of the tables' cubic interpolation.
* Each isotope of each element in each layer is its own scattering channel with its own
  kinematic factor and lab-frame Rutherford cross section times a screening correction;
  isotopes with nearly equal kinematic factors (heavy elements) are merged (:mod:`.reactions`).
* For every channel the depth range that sends particles to the detector above the
  low-energy cut-off is found (bracketed Newton iteration on the range tables), and depth
  nodes are placed in it so that the pieces between them are at most ``piece_width_keV``
  and ``piece_relative_width`` of their energy wide in detected energy.  Each node's
  particle is followed out through the layers above: detected energy, the gain
  dE_det/dE_start, and the energy variance (Bohr straggling with non-statistical broadening
  on both paths, K² through the scattering, beam spread; detector resolution added last).
* Between nodes the yield density is linear in detected energy; the count of every piece
  is the depth integral of the cross section (Simpson in beam energy).  The smoothed
  spectrum is assembled in channel space (:mod:`.spectrum`).

Nodes are kept in flat lists ("runs" of nodes per channel and sample), so the work grows
with the nodes actually needed, and every sample's result is bit-for-bit independent of the
other samples in the batch.

Cut-off behaviour: particles whose energy drops below ``energy_cutoff_keV`` anywhere on their
path are not counted.  The spectrum before detector resolution therefore ends sharply at the
cut-off; after resolution it falls off over a few σ around it.  Channels entirely below the
cut-off are zero.  The last ~3σ above the cut-off are not comparable with codes that treat
the cut-off differently (JaBS stops at emin with a coarse last step).

Precision: derivatives (reverse and forward mode) are finite in float32 and float64 for any
areal densities >= 0, zeros included.  Energies are carried as absolute values, so float32
(relative resolution 6e-8, ~2e-4 keV at 3 MeV) resolves a layer's energy loss only when it
spans many such steps.  For layers of >= 100 TFU the float32 derivatives with respect to
their elements agree with float64 to ~1e-2 of the largest derivative (>= 1000 TFU: ~2e-3;
tests/test_rbs_gradients.py); a thinner layer's own counts are off by ~1% at 10 TFU and
10-30% at 0.1 TFU (W/D at 3 MeV), and lost below ~0.01 TFU.  In both precisions the
derivatives with respect to the elements of an empty layer (all its amounts 0) are not
partial derivatives: such a layer has no composition (equal fractions stand in) and no
width, so they are those along equal fractions or 0, depending on rounding.  Elements at
amount 0 in a layer that is not empty have exact derivatives.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.autograd import forward_ad

from .constants import (
    ANDERSEN_V1_KEV,
    BOHR_STRAGGLING_KEV2_PER_TFU,
    FWHM_PER_SIGMA,
    LECUYER_KEV,
    MILLIBARN_CM2,
    TFU,
)
from .experiment import (
    MAX_CHANNELS,
    Experiment,
    ExperimentError,
    Setup,
    beam_ion,
    sample_species,
)
from .isotopes import Species
from .kinematics import kinematic_slope, largest_scattering_angle
from .pileup import background, pileup
from .reactions import Reaction, layer_reactions
from .spectrum import smoothed_cumulative
from .stopping import LogGrid, electronic_stopping_table, species_nuclear_stopping
from .tables import LayerTables, _du

#: The stopping grid starts at 1 keV/u and spans 5 decades.
_GRID_E_MIN = 1.0
_GRID_DECADES = 5
#: Size (in table entries and nodes) of the blocks of samples simulated together.
_TARGET_ELEMENTS = 1 << 18


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class RBSSimulator:
    """Simulate RBS spectra of many samples with one layer/element structure.

    Args:
        setup: beam, geometry, detector, physics and numerics.
        structure: element or isotope names per layer, surface first, e.g.
            ``[["W", "D"], ["W", "D"]]``.  This fixes the order of the parameters.
        device: torch device (default: CUDA when available, else CPU).
        dtype: float64 by default on CPU, float32 by default on CUDA.
    """

    def __init__(
        self,
        setup: Setup,
        structure: Sequence[Sequence[str]],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        self.setup = setup
        self.structure = tuple(tuple(str(n) for n in layer) for layer in structure)
        if not self.structure or any(len(layer) == 0 for layer in self.structure):
            raise ExperimentError("sample.layers: every layer needs at least one element")
        for index, layer in enumerate(self.structure):
            if len(set(layer)) != len(layer):
                raise ExperimentError(f"sample.layers[{index}]: an element is listed twice")
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype or (torch.float32 if self.device.type == "cuda" else torch.float64)
        self._build()

    @classmethod
    def from_experiment(cls, experiment: Experiment, **kwargs) -> RBSSimulator:
        return cls(experiment.setup, experiment.structure, **kwargs)

    # ------------------------------------------------------------------ set-up
    @property
    def parameter_names(self) -> list[str]:
        """Names of the parameters: ``"layer1:W"``, ``"layer1:D"``, …"""
        return [f"layer{i + 1}:{n}" for i, layer in enumerate(self.structure) for n in layer]

    @property
    def n_parameters(self) -> int:
        return sum(len(layer) for layer in self.structure)

    def _build(self) -> None:
        s = self.setup
        self.ion = beam_ion(s.ion, "beam.ion")
        z1, m1 = self.ion.Z, self.ion.mass_u
        theta = math.radians(s.scattering_deg)
        self.cos_in = math.cos(math.radians(s.incidence_deg))
        self.cos_out = math.cos(math.radians(s.exit_angle_deg))
        self.n_layers = len(self.structure)
        names = sorted({n for layer in self.structure for n in layer})
        self.species_names = names
        layer_of = {n: li for li in reversed(range(self.n_layers)) for n in self.structure[li]}
        sp = [sample_species(n, f"sample.layers[{layer_of[n]}].{n}") for n in names]
        n_sp = len(sp)

        # energy grid (uniform in ln E) covering the cut-off to the beam energy
        grid = LogGrid(_GRID_E_MIN, _GRID_DECADES, s.numerics.grid_points_per_decade)
        e_lo = 0.9 * s.energy_cutoff_keV / m1
        e_hi = s.beam_energy_keV / m1
        if e_lo < 1.2 * _GRID_E_MIN:
            raise ExperimentError(
                f"energy_cutoff_keV: {s.energy_cutoff_keV} keV is below the stopping tables "
                f"(at least {1.34 * _GRID_E_MIN * m1:.3g} keV for {s.ion})"
            )
        i_lo = int(math.floor(math.log(e_lo / _GRID_E_MIN) / grid.step))
        i_hi = int(math.ceil(math.log(e_hi / _GRID_E_MIN) / grid.step)) + 2
        if i_hi >= grid.size:
            raise ExperimentError(
                f"beam.energy_keV: {s.beam_energy_keV} keV is above the stopping tables "
                f"({_GRID_E_MIN * 10**_GRID_DECADES * m1 / 1000:.3g} MeV for {s.ion})"
            )
        self._u0 = math.log(_GRID_E_MIN * m1) + i_lo * grid.step
        self._grid_size = i_hi - i_lo + 1
        self._h = grid.step
        energies = m1 * grid.values()[i_lo : i_hi + 1]

        stop = np.empty((n_sp, energies.size))
        for j, spc in enumerate(sp):
            table = electronic_stopping_table(z1, spc.Z, grid)[i_lo : i_hi + 1]
            if s.physics.nuclear_stopping:
                table = table + species_nuclear_stopping(z1, m1, spc, energies)
            stop[j] = table * 1e-3  # eV/TFU -> keV/TFU
        omega2 = np.array([BOHR_STRAGGLING_KEV2_PER_TFU * z1**2 * spc.Z for spc in sp])
        if s.physics.straggling == "none":
            omega2[:] = 0.0

        # parameters -> (layer, species) columns
        columns, default_fraction = [], np.zeros((self.n_layers, n_sp))
        for li, layer in enumerate(self.structure):
            for n in layer:
                columns.append(li * n_sp + names.index(n))
                default_fraction[li, names.index(n)] = 1.0 / len(layer)

        # scattering channels, ordered by layer; isotopes whose kinematic factors differ by
        # much less than the detector resolution are merged (see .reactions)
        sigma_det = s.detector.resolution_fwhm_keV / FWHM_PER_SIGMA
        max_k_std = s.numerics.isotope_merge_sigmas * sigma_det / s.beam_energy_keV
        reactions, species_column = [], []
        p = 0
        for li, layer in enumerate(self.structure):
            for n in layer:
                found = layer_reactions(li, p, sp[names.index(n)], z1, m1, theta, max_k_std)
                reactions += found
                species_column += [li * n_sp + names.index(n)] * len(found)
                p += 1
        self.reactions: tuple[Reaction, ...] = tuple(reactions)
        if not reactions:
            warnings.warn(
                _nothing_scatters(s.ion, m1, s.scattering_deg, self.structure, sp, names),
                UserWarning,
                stacklevel=3,
            )

        dev, dt = self.device, self.dtype
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=dt, device=dev)  # noqa: E731
        self._stop_species = as_t(stop)  # [S, G]
        self._n_species = n_sp
        # stopping, its u-derivative and Bohr's ω² of every species, mixed with the atom
        # fractions (Bragg's rule is linear, and so is the derivative).  Products and sums
        # here and below are element-wise torch operations, not matrix products: BLAS
        # kernels (MKL on AMD processors, for one) round a row differently depending on
        # how many rows the product has, and a spectrum must not depend on its batch.
        self._species_tables = torch.cat(
            [self._stop_species, _du(self._stop_species, self._h), as_t(omega2)[:, None]], 1
        )  # [S, 2G + 1]
        # parameter d -> its (layer, species) column of the amounts [B, L·S]
        self._amount_columns = torch.as_tensor(columns, dtype=torch.long, device=dev)
        self._default_fraction = as_t(default_fraction)  # [L, S]
        self._grid_energy = as_t(energies)
        r = self.reactions
        order = sorted(range(len(r)), key=lambda i: -r[i].layer)
        self._reactions_deepest_first = torch.as_tensor(order, dtype=torch.long, device=dev)
        # reactions in layers >= l: the first _reactions_from[l] of that order
        self._reactions_from = [sum(x.layer >= li for x in r) for li in range(self.n_layers)]
        self._r_layer = torch.as_tensor([x.layer for x in r], device=dev, dtype=torch.long)
        self._r_species = torch.as_tensor(species_column, device=dev, dtype=torch.long)
        self._r_abundance = as_t([x.abundance for x in r])
        # per reaction: ln K, K², the merged isotopes' variance of K, K, Rutherford's
        # σ·E² and two screening constants of the channel's main isotope (_cross_section)
        scr = s.physics.screening
        # the detector's spread of scattering angles (its aperture): a spread of K
        sigma_theta = math.radians(s.detector.angular_spread_fwhm_deg) / FWHM_PER_SIGMA
        constants = []
        for x in r:
            ch = x.channel
            k = x.kinematic_factor
            if scr == "andersen":
                a = (
                    ANDERSEN_V1_KEV
                    * ch.z1
                    * ch.z2
                    * math.sqrt(ch.z1 ** (2 / 3) + ch.z2 ** (2 / 3))
                    / ch.cm_fraction
                )
                half = 2.0 * math.sin(ch.theta_cm / 2.0)
                screening = (a, (a / half) ** 2)
            elif scr == "lecuyer":
                screening = (LECUYER_KEV * ch.z1 * ch.z2 ** (4 / 3) / ch.cm_fraction, 0.0)
            else:
                screening = (0.0, 0.0)
            constants.append(
                (
                    math.log(k),
                    k * k,
                    x.kinematic_variance + (kinematic_slope(ch) * sigma_theta) ** 2,
                    k,
                    x.rutherford_lab_keV2_mb,
                    *screening,
                )
            )
        self._r_constants = as_t(constants)  # [R, 7]
        self._top_state = torch.tensor(
            [[math.log(s.beam_energy_keV), math.log(s.energy_cutoff_keV)]], dtype=dt, device=dev
        )
        self._direction = torch.tensor(
            [-1.0 / self.cos_in, 1.0 / self.cos_out], dtype=dt, device=dev
        )
        self._newton_weights = torch.tensor([1.0, self.cos_in / self.cos_out], dtype=dt, device=dev)

        self._var_beam = (s.beam_spread_fwhm_keV / FWHM_PER_SIGMA) ** 2
        # Q·Ω·(mb → cm²)·(TFU → atoms/cm²)
        self._yield_scale = s.fluence_times_solid_angle_sr * MILLIBARN_CM2 * TFU
        self._kernel_cache: dict[int, tuple] = {}  # constants of the compiled forward model
        self._setup_calibration: _Calibration | None = None  # see _calibration

    # ------------------------------------------------------------------ physics pieces
    def _cross_section(self, rutherford, screen_a, screen_b, energy: torch.Tensor):
        """σ (mb/sr) at lab energies ``energy`` of reactions with Rutherford constant σ·E²
        ``rutherford`` and screening constants ``screen_a``, ``screen_b`` (per point).

        Andersen: with v = a/E (a = V₁/f_cm) and b = (a/(2 sin θ_cm/2))², the factor
        (1 + v/2)²/(1 + v + (v/(2 sin θ_cm/2))²)² makes σ = σ_R E² ((E + a/2)/(E² + aE + b))²;
        L'Ecuyer: σ = σ_R (1 − a/E).
        """
        scr = self.setup.physics.screening
        if scr == "andersen":
            ratio = (energy + 0.5 * screen_a) / torch.addcmul(screen_b, energy, energy + screen_a)
            return rutherford * ratio * ratio
        sigma = rutherford / (energy * energy)
        if scr == "lecuyer":
            sigma = sigma * (1.0 - screen_a / energy)
        return sigma

    def _layer_composition(self, params: torch.Tensor):
        batch = params.shape[0]
        amounts = (
            params.new_zeros(batch, self.n_layers * self._n_species)
            .index_add(1, self._amount_columns, params)
            .view(batch, self.n_layers, self._n_species)
        )
        thickness = amounts.sum(-1)  # [B, L]
        empty = thickness <= 0
        fraction = amounts / torch.where(empty, 1.0, thickness)[..., None]
        return thickness, torch.where(empty[..., None], self._default_fraction, fraction)

    # ------------------------------------------------------------------ main entry
    def reaction_share(self, first_layer: int) -> float:
        """Fraction of the scattering channels that lie in layers >= ``first_layer`` (0:
        the surface layer): roughly what ``simulate(…, first_layer)`` costs compared with
        the whole spectrum."""
        return self._reactions_from[self._check_layer(first_layer)] / max(1, len(self.reactions))

    def _check_layer(self, first_layer) -> int:
        if not (isinstance(first_layer, int | np.integer) and 0 <= first_layer < self.n_layers):
            raise ValueError(
                f"first_layer: expected an integer layer index in [0, "
                f"{self.n_layers - 1}], got {first_layer!r}"
            )
        return int(first_layer)

    def simulate(
        self,
        areal_densities,
        first_layer: int = 0,
        instrument: Instrument | None = None,
        electronics: bool = True,
    ) -> torch.Tensor:
        """Expected (noise-free) counts per channel.

        Args:
            areal_densities: [B, D] or [D] areal densities (TFU) in the order of
                :attr:`parameter_names`; a tensor (gradients flow through) or array-like.
            first_layer: only the particles scattered in this layer (0: the surface layer)
                and the layers below it are counted.  A layer's composition changes the
                scattering in it and (through the energy loss) below it, but not above it:
                the part of the spectrum that the parameters of layer l can change is
                ``simulate(y, first_layer=l)``, at a fraction of the cost
                (:meth:`reaction_share`).  Partial spectra of different first layers add up
                to the whole to rounding (~1e-15 relative), not bit for bit.
            instrument: per-spectrum fluence, calibration and resolution instead of the
                setup's (:class:`Instrument`); derivatives with respect to them flow like
                those of the areal densities.  The depth nodes do not depend on them, so a
                spectrum changes smoothly with them.
            electronics: add the pile-up and background of the setup or ``instrument``
                (False: leave them to :meth:`electronics`, e.g. after averaging the spectra
                of a rough layer's thicknesses: pile-up is not linear in the spectrum).

        Returns:
            [B, channels] (or [channels]) tensor of expected counts.
        """
        n_reactions = self._reactions_from[self._check_layer(first_layer)]
        params = torch.as_tensor(areal_densities, dtype=self.dtype, device=self.device)
        single = params.dim() == 1
        if single:
            params = params[None]
        if params.dim() != 2 or params.shape[1] != self.n_parameters:
            raise ValueError(
                f"areal_densities: expected shape [B, {self.n_parameters}] "
                f"({', '.join(self.parameter_names)}), got {tuple(params.shape)}"
            )
        with torch.no_grad():
            bad = ~torch.isfinite(params) | (params < 0)
            if bool(bad.any()):
                b, d = (int(x) for x in torch.nonzero(bad)[0])
                raise ValueError(
                    f"areal_densities[{b}, {d}] ({self.parameter_names[d]}): expected a finite "
                    f"number >= 0 (1e15 at/cm2), got {float(params[b, d])}"
                )
        calibration = self._calibration(instrument, params)
        # blocks of samples whose working set (tables of every layer, nodes of every
        # channel) fits in cache; the result does not depend on the blocking
        per_sample = n_reactions * 16 + self.n_layers * self._grid_size
        chunk = max(1, _TARGET_ELEMENTS // per_sample)
        if n_reactions == 0:
            # nothing scatters back from these layers: zero counts, still a function of the
            # input (zero derivatives, so that backward and forward mode work as usual)
            out = params.new_zeros(params.shape[0], self.setup.detector.channels)
            out = out + 0.0 * params[:, :1] * calibration.fluence_factor[:, None]
            if electronics:
                out = self._electronics(out, calibration, instrument)
            return out[0] if single else out
        # without derivatives to track, inference mode saves a fifth of the time on small batches
        tracked = any(
            x.requires_grad or forward_ad.unpack_dual(x).tangent is not None
            for x in (params, *calibration)
        )
        if not tracked and self.device.type == "cpu" and self.dtype == torch.float64:
            out = self._simulate_compiled(params, n_reactions, calibration)
            if electronics:
                out = self._electronics(out, calibration, instrument)
            return out[0] if single else out
        with contextlib.nullcontext() if tracked else torch.inference_mode():
            parts = [
                self._simulate(params[i : i + chunk], n_reactions, calibration.rows(i, i + chunk))
                for i in range(0, params.shape[0], chunk)
            ]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        if electronics:
            out = self._electronics(out, calibration, instrument)
        return out[0] if single else out

    def _simulate_compiled(self, params, n_reactions: int, calibration: _Calibration):
        """Spectra [B, C] of the first ``n_reactions`` reactions (deepest first) by the
        compiled forward model (:mod:`.forward_kernel`; no derivatives, CPU, float64)."""
        from .forward_kernel import simulate_spectra  # numba compiles it on first use

        with torch.no_grad():  # each spectrum's channel grid starts at its own cut-off
            chi_cut = self._cutoff_channel(calibration)
            self._checked_grid(chi_cut)
            edge0 = (chi_cut.floor() - 1.0).clamp(max=0.0)
        per_spectrum = (
            np.ascontiguousarray(params.detach().numpy()),
            *(
                np.ascontiguousarray(x.detach().numpy())
                for x in (
                    calibration.offset,
                    calibration.gain,
                    calibration.var_det,
                    calibration.fluence_factor,
                )
            ),
            edge0.numpy().astype(np.int64),
        )
        out = simulate_spectra(
            per_spectrum,
            self._kernel_constants(n_reactions),
            self.setup.detector.channels,
            threads=torch.get_num_threads(),
        )
        return torch.from_numpy(out)

    def _kernel_constants(self, n_reactions: int) -> tuple:
        """The simulator's constants as the compiled forward model takes them."""
        cached = self._kernel_cache.get(n_reactions)
        if cached is not None:
            return cached
        from .forward_kernel import ERFCX_COEFFICIENTS, SCREENING_CODES

        s, num = self.setup, self.setup.numerics
        size = self._grid_size
        as_np = lambda x: np.ascontiguousarray(x.cpu().numpy())  # noqa: E731
        order = self._reactions_deepest_first[:n_reactions]
        geometry = np.array(
            [
                math.log(s.beam_energy_keV),
                math.log(s.energy_cutoff_keV),
                float(s.energy_cutoff_keV),
                self.cos_in / self.cos_out,
                1.0 / self.cos_in,
                1.0 / self.cos_out,
                float(self._var_beam),
                float(self._yield_scale),
            ]
        )
        numerics = np.array(
            [
                num.piece_width_keV,
                num.piece_relative_width,
                num.max_nodes_per_layer,
                num.gaussian_cutoff_sigmas,
            ],
            dtype=float,
        )
        constants = (
            as_np(self._species_tables[:, :size]),
            as_np(self._species_tables[:, size : 2 * size]),
            as_np(self._species_tables[:, -1]),
            as_np(self._grid_energy),
            float(self._u0),
            float(self._h),
            as_np(self._amount_columns),
            as_np(self._default_fraction),
            as_np(self._r_layer.index_select(0, order)),
            as_np(self._r_species.index_select(0, order)),
            as_np(self._r_abundance.index_select(0, order)),
            as_np(self._r_constants.index_select(0, order)),
            geometry,
            numerics,
            SCREENING_CODES[s.physics.screening],
            float(s.detector.quadratic_keV_per_channel2),
            ERFCX_COEFFICIENTS,
        )
        self._kernel_cache[n_reactions] = constants
        return constants

    def _calibration(self, instrument: Instrument | None, params: torch.Tensor) -> _Calibration:
        """The per-spectrum detector values of ``instrument`` (the setup's where None),
        checked: finite, gains and resolutions > 0, fluences >= 0 (the channel grid's size
        is checked by :meth:`_channel_grid`).  The setup's own values are checked once and
        kept (a single spectrum's simulation would spend a third of its time here)."""
        if instrument is None or all(value is None for value in instrument):
            if self._setup_calibration is None:
                self._setup_calibration = self._checked_calibration(Instrument(), 1)
            return _Calibration(*(x.expand(params.shape[0]) for x in self._setup_calibration))
        return self._checked_calibration(instrument, params.shape[0])

    def _checked_calibration(self, instrument: Instrument, batch: int) -> _Calibration:
        s, det = self.setup, self.setup.detector
        defaults = (
            s.fluence_times_solid_angle_sr,
            det.offset_keV,
            det.gain_keV_per_channel,
            det.resolution_fwhm_keV,
            det.pileup_probability,
            s.background_counts,
            s.background_low_energy_counts,
        )
        values = []
        for name, value, default in zip(Instrument._fields, instrument, defaults, strict=True):
            v = torch.as_tensor(
                default if value is None else value, dtype=self.dtype, device=self.device
            )
            if v.dim() > 1 or (v.dim() == 1 and v.shape[0] not in (1, batch)):
                raise ValueError(
                    f"instrument.{name}: expected a number or a tensor [{batch}], got shape "
                    f"{tuple(v.shape)}"
                )
            v = v.expand(batch)
            ok, expected = _INSTRUMENT_RANGES[name]
            with torch.no_grad():
                bad = ~(torch.isfinite(v) & ok(v))
                if bool(bad.any()):
                    b = int(torch.nonzero(bad)[0, 0])
                    raise ValueError(
                        f"instrument.{name}[{b}]: expected a finite number {expected}, got "
                        f"{float(v[b])}"
                    )
            values.append(v)
        fluence, offset, gain, fwhm, pileup, flat, low = values
        var_det = (fwhm / FWHM_PER_SIGMA) ** 2
        factor = fluence / s.fluence_times_solid_angle_sr
        return _Calibration(offset, gain, var_det, factor, pileup, flat, low)

    def electronics(self, counts: torch.Tensor, instrument: Instrument | None = None):
        """Spectra ``counts`` [B, C] (of ``simulate(..., electronics=False)``) with the
        pile-up and background of the setup or ``instrument``."""
        return self._electronics(counts, self._calibration(instrument, counts), instrument)

    def _electronics(self, out, calibration: _Calibration, instrument: Instrument | None):
        """Pile-up and background (:mod:`.pileup`) where the setup or ``instrument`` has
        them (given as instrument values, they are applied even at 0, for derivatives)."""
        given = instrument or Instrument()
        c = calibration
        if given.pileup_probability is not None or self.setup.detector.pileup_probability:
            out = pileup(out, c.pileup, c.offset, c.gain)
        if (
            given.background_counts is not None
            or given.background_low_energy_counts is not None
            or self.setup.background_counts
            or self.setup.background_low_energy_counts
        ):
            det = self.setup.detector
            chi = torch.arange(det.channels, dtype=out.dtype, device=out.device) + 0.5
            q = det.quadratic_keV_per_channel2
            energy = c.offset[:, None] + chi * (c.gain[:, None] + q * chi)
            out = out + background(
                energy, self.setup.energy_cutoff_keV, c.background, c.background_low
            )
        return out

    def _cutoff_channel(self, calibration: _Calibration) -> torch.Tensor:
        """Channel coordinate [B] of the cut-off energy in each calibration."""
        cut, q = self.setup.energy_cutoff_keV, self.setup.detector.quadratic_keV_per_channel2
        de = cut - calibration.offset
        if q == 0.0:
            return de / calibration.gain
        disc = (calibration.gain * calibration.gain + 4.0 * q * de).clamp_min(0.0)
        return 2.0 * de / (calibration.gain + disc.sqrt())

    def _checked_grid(self, chi_cut: torch.Tensor) -> tuple[int, int]:
        """First edge (<= 0: the grid reaches down to the cut-off) and number of edges of a
        grid for the cut-off channels ``chi_cut`` [B], checked against MAX_CHANNELS."""
        lowest = float(chi_cut.min())
        edge0 = min(0, math.floor(lowest) - 1)
        n_edges = self.setup.detector.channels + 1 - edge0
        if n_edges > MAX_CHANNELS:
            raise ValueError(
                f"instrument: a calibration puts the cut-off at {self.setup.energy_cutoff_keV:g} "
                f"keV at channel {lowest:.4g}: {n_edges} channel edges, at most "
                f"{MAX_CHANNELS} are supported"
            )
        return edge0, n_edges

    def _channel_grid(self, calibration: _Calibration) -> tuple[int, int, torch.Tensor]:
        """First edge (<= 0: the grid reaches down to the cut-off), number of edges, and
        which channels lie above the cut-off [B, C], for the calibrations of a block."""
        det, cut = self.setup.detector, self.setup.energy_cutoff_keV
        q = det.quadratic_keV_per_channel2
        with torch.no_grad():
            edge0, n_edges = self._checked_grid(self._cutoff_channel(calibration))
            upper = torch.arange(1, det.channels + 1, dtype=self.dtype, device=self.device)
            upper = calibration.offset[:, None] + upper * (calibration.gain[:, None] + q * upper)
        return edge0, n_edges, (upper > cut).to(self.dtype)

    def _simulate(
        self, params: torch.Tensor, n_reactions: int, calibration: _Calibration
    ) -> torch.Tensor:
        """Spectra [B, C] from the first ``n_reactions`` reactions, deepest first."""
        batch = params.shape[0]
        n_layers, size = self.n_layers, self._grid_size
        with _stage("tables"):
            thickness, fraction = self._layer_composition(params)  # [B, L], [B, L, S]
            mixed = (
                (fraction.unsqueeze(-1) * self._species_tables).sum(-2).view(batch * n_layers, -1)
            )
            tab = LayerTables.build(
                mixed[:, :size],
                mixed[:, -1],
                self._u0,
                self._h,
                stopping_slope=mixed[:, size : 2 * size],
                energy=self._grid_energy,
            )
        with _stage("layer_tops"):
            u_top, v_top, u_need = self._layer_tops(tab, thickness)  # [B, L+1] ×2, [B, L]

        # one "run" of depth nodes per (reaction, sample); deepest layers first, so that the
        # particles that still have to cross layer m always form a prefix of the node list
        with _stage("node_placement"):
            runs = self._runs(batch, fraction, u_top, v_top, n_reactions)
            u_need_run = u_need.take(runs.row)
            u_bot, u_x_bot, top = self._useful_range(
                tab, runs, u_top.take(runs.row + runs.sample + 1), u_need_run
            )
            run_of, u_in = self._place_nodes(runs, u_bot, u_x_bot, u_need_run)
            # per node: the run's constants and its (R, S, T) at the top of the layer
            v_rel = runs.v_top / (top[:, 1] * top[:, 1])  # v / S² at the top
            (lnk, k2, kvar, k, rutherford, screen_a, screen_b, scale, r_top, _, t_top, v_rel) = (
                torch.cat([runs.constants, top, v_rel[:, None]], 1)
                .index_select(0, run_of)
                .unbind(1)
            )
            row = runs.row.index_select(0, run_of)
            # (R, S, T) at the beam energy, at K·E and (for the piece below each node, in
            # the node's row) at the mid-point energy of the piece
            e_in = torch.exp(u_in)
            e_mid = 0.5 * (e_in[1:] + e_in[:-1])
            u_mid = torch.cat([torch.log(e_mid), u_in[-1:]])
            u_scat = u_in + lnk
            here, scat, mid = tab.lookup(
                row[:, None], torch.stack([u_in, u_scat, u_mid], 1)
            ).unbind(1)
            r_here, s_beam, t_here = here.unbind(1)
        with _stage("exit_paths"):
            # beam energy variance at the node: non-statistical broadening and straggling
            # since the top of the layer; then scattering
            v_in = s_beam * s_beam * torch.addcmul(v_rel, tab.omega2.take(row), t_top - t_here)
            depth_out = (r_top - r_here) * (self.cos_in / self.cos_out)
            u_det, variance, gain, s_start, inside = self._follow(
                tab, thickness, runs, run_of, row, u_scat, k2 * v_in, depth_out, scat
            )
            spread = e_in * gain
            variance = torch.addcmul(variance, kvar, spread * spread)

        # yield density dN/dE_det at the nodes and counts of the pieces between them
        with _stage("yields"):
            sigma_in = self._cross_section(rutherford, screen_a, screen_b, e_in)
            # dE_det/dx along the normal, times cos α
            dedx = gain * torch.addcmul(s_start * (self.cos_in / self.cos_out), k, s_beam)
            density = torch.where(inside, scale * sigma_in / dedx, 0.0)  # counts/keV
            same_run = run_of[1:] == run_of[:-1]  # piece j: nodes j, j+1
            g_in = sigma_in / s_beam
            g_mid = (
                self._cross_section(rutherford[1:], screen_a[1:], screen_b[1:], e_mid) / mid[:-1, 1]
            )
            counts = (
                (scale[1:] * (1.0 / 6.0))
                * (e_in[:-1] - e_in[1:])
                * (torch.add(g_in[:-1] + g_in[1:], g_mid, alpha=4.0))
            )
            counts = torch.where(same_run & inside[1:] & inside[:-1], counts, 0.0)
        return self._assemble(
            batch,
            runs.sample.index_select(0, run_of),
            u_det,
            variance,
            density,
            counts,
            same_run,
            calibration,
        )

    def _assemble(self, batch, sample, u_det, variance, density, counts, same_run, calibration):
        """Channel spectrum [B, C] of the piecewise-linear densities of all runs.

        ``sample``, ``u_det``, ``variance`` and ``density`` are per node (ln keV, keV²,
        counts/keV); ``counts`` and ``same_run`` per pair of consecutive nodes (a piece when
        both belong to one run); ``calibration`` the detector values of the B spectra.
        """
        det = self.setup.detector
        q = det.quadratic_keV_per_channel2
        offset, gain, var_det = (x.index_select(0, sample) for x in calibration[:3])
        de = torch.exp(u_det) - offset
        if q == 0.0:
            chi = de / gain
            local_gain = gain
        else:
            # stable root of q χ² + g χ − ΔE = 0 on the increasing branch
            chi = 2.0 * de / (gain + torch.sqrt((gain * gain + 4.0 * q * de).clamp_min(0.0)))
            local_gain = gain + 2.0 * q * chi
        dens_ch = density * local_gain  # counts/channel
        var_ch = (variance + var_det) / (local_gain * local_gain)  # channel²
        width = chi[:-1] - chi[1:]  # >= 0 within a run
        ok = same_run & (width > 0)
        inv_w = ok.to(width.dtype) / torch.where(ok, width, 1.0)
        mean = counts * inv_w
        slope = (dens_ch[:-1] - dens_ch[1:]) * inv_w
        half = 0.5 * slope * width
        # per node: the density just above it minus just below it, and the change of slope
        ends = torch.nn.functional.pad(torch.stack([mean - half, mean + half, slope]), (1, 1))
        jump = ends[0, :-1] - ends[1, 1:]
        kink = ends[2, :-1] - ends[2, 1:]
        edge0, n_edges, above_cutoff = self._channel_grid(calibration)
        cum = smoothed_cumulative(
            chi - edge0,
            jump,
            kink,
            var_ch,
            sample,
            batch,
            n_edges,
            self.setup.numerics.gaussian_cutoff_sigmas,
        )
        spectrum = torch.diff(cum, dim=1)[:, -edge0 : det.channels - edge0]
        # differences of the cumulative counts leave ±1e-10 rounding where there is nothing;
        # it is clamped to 0 in the values only: the derivatives pass unchanged (a clamp's
        # zero derivative there would drop, depending on the sign of the rounding, the
        # derivative of counts that appear as an element's amount grows from 0)
        clamped = spectrum + (spectrum.clamp(min=0.0) - spectrum).detach()
        return clamped.to(self.dtype) * above_cutoff * calibration.fluence_factor[:, None]

    def _layer_tops(self, tab: LayerTables, thickness):
        """At the top of every layer (and below the last one, [B, L+1]): ln(beam energy) and
        the beam's energy variance; and ([B, L]) ln of the energy a particle leaving through
        the top of the layer needs to reach the detector with the cut-off energy (clamped to
        the top of the tables, where none can).  The two recursions run together, one table
        call per layer."""
        batch, n_layers = thickness.shape
        base = torch.arange(0, batch * n_layers, n_layers, device=self.device)[:, None]
        # column 0: the beam going in; column 1: the cut-off energy carried back in
        state = self._top_state.expand(batch, 2)
        path = thickness[..., None] * self._direction  # [B, L, 2]
        omega2 = tab.omega2.view(batch, n_layers)
        var = torch.full((batch,), self._var_beam, dtype=self.dtype, device=self.device)
        states, variances = [state], [var]
        for li in range(n_layers):
            row = (base + li).expand(batch, 2)
            before = tab.lookup(row, state)
            state, after = tab.invert(row, before[..., 0] + path[:, li])
            _, s_in, t_in = before[:, 0].unbind(-1)
            _, s_out, t_out = after[:, 0].unbind(-1)
            ratio = s_out / s_in
            var = torch.addcmul(ratio * ratio * var, omega2[:, li] * s_out * s_out, t_in - t_out)
            states.append(state)
            variances.append(var)
        states = torch.stack(states, 1)  # [B, L+1, 2]
        return states[..., 0], torch.stack(variances, 1), states[:, :-1, 1]

    def _runs(self, batch, fraction, u_top, v_top, n_reactions) -> _Runs:
        """Per-(reaction, sample) quantities of the first ``n_reactions`` reactions, ordered
        deepest layer first."""
        order = self._reactions_deepest_first[:n_reactions]
        reaction = order if batch == 1 else order.repeat_interleave(batch)
        sample = torch.arange(batch, device=self.device).repeat(len(order))
        layer = self._r_layer.index_select(0, reaction)
        row = layer.add(sample, alpha=self.n_layers)
        conc = fraction.reshape(-1).take(
            self._r_species.index_select(0, reaction).add(sample, alpha=fraction[0].numel())
        ) * self._r_abundance.index_select(0, reaction)
        constants = self._r_constants.index_select(0, reaction)
        # column 7 of the constants: Q·Ω·c (counts per mb/sr per TFU of the isotope)
        scale = conc * self._yield_scale
        top = row + sample  # index in [B, L+1] of the layer top
        return _Runs(
            reaction,
            sample,
            layer,
            row,
            u_top.take(top),
            v_top.take(top),
            torch.cat([constants, scale[:, None]], 1),
        )

    def _place_nodes(self, runs: _Runs, u_bot, u_x_bot, u_need):
        """Run index and ln(beam energy) of all nodes (flat, run by run).

        The pieces between nodes should be at most piece_width_keV wide in detected energy
        and at most piece_relative_width of it (:func:`node_coordinate`).  Detected energies
        are predicted from the exit energies E_x at the top of the run's layer: E_det ≈ E_x
        − (E_need − E_cut), the energy the layers above take from a particle that just
        reaches the cut-off (exact for the surface layer).  In between the two ends, E_det
        is taken as linear in beam energy.
        """
        num = self.setup.numerics
        cut = self.setup.energy_cutoff_keV
        n_runs = len(runs.reaction)
        loss_above = (torch.exp(u_need) - cut).clamp(min=0.0)
        e_x = torch.exp(torch.stack([runs.u_hi + runs.constants[:, 0], u_x_bot], 1))
        e_ends = (e_x - loss_above[:, None]).clamp(min=cut)
        knee = num.piece_width_keV / num.piece_relative_width
        xi = node_coordinate(e_ends, knee) * (1.0 / num.piece_relative_width)
        xi_top, xi_bot = xi.unbind(1)
        pieces = (xi_top - xi_bot).ceil().clamp(1, num.max_nodes_per_layer - 1)
        counts = pieces.long() + 1
        run_of = torch.repeat_interleave(torch.arange(n_runs, device=self.device), counts)
        start = (torch.cumsum(counts, 0) - counts).to(self.dtype)
        top, bot = e_ends.unbind(1)
        drop = top - bot
        e_hi = torch.exp(runs.u_hi)
        (start, inv_pieces, xi_top, dxi, top, inv_drop, falls, e_hi, de) = (
            torch.stack(
                [
                    start,
                    1.0 / pieces,
                    xi_top,
                    xi_bot - xi_top,
                    top,
                    # only used where drop > 0; elsewhere 1, not 1/1e-30 (its derivative
                    # −1e60 is inf in float32, and 0·inf makes the backward NaN)
                    1.0 / torch.where(drop > 0, drop, 1.0),
                    (drop > 0).to(self.dtype),
                    e_hi,
                    torch.exp(u_bot) - e_hi,
                ],
                1,
            )
            .index_select(0, run_of)
            .unbind(1)
        )
        frac = (
            torch.arange(len(run_of), dtype=self.dtype, device=self.device) - start
        ) * inv_pieces
        e_det = node_coordinate_inverse(
            torch.addcmul(xi_top, frac, dxi) * num.piece_relative_width, knee
        )
        frac = torch.where(falls > 0, (top - e_det) * inv_drop, frac)
        return run_of, torch.log(torch.addcmul(e_hi, frac.clamp(0.0, 1.0), de))

    def _follow(self, tab: LayerTables, thickness, runs: _Runs, run_of, row, u, v, path, before):
        """Follow particles just after the scattering (ln energy ``u``, energy variance
        ``v``; one per node, node i belongs to run ``run_of[i]`` in table row ``row[i]``,
        nodes ordered by run) out of the sample: first ``path`` TFU through the rest of the
        own layer (``before`` holds the tables there at ``u``), then through every layer
        above.  Returns ln(detected energy), its variance, dE_det/dE_start, the stopping at
        the start and whether the particle got out."""
        n_layers = self.n_layers
        u, v, gain, s_start, inside = tab.cross(row, u, v, path, before=before)
        # deeper layers come first in the node list
        nodes_per_layer = (
            torch.zeros(n_layers, dtype=torch.long, device=self.device)
            .index_add(0, runs.layer.index_select(0, run_of), torch.ones_like(run_of))
            .tolist()
        )
        path_out = thickness * (1.0 / self.cos_out)
        n = 0
        for m in range(n_layers - 2, -1, -1):
            n += nodes_per_layer[m + 1]
            if n == 0:
                continue
            row_m = runs.sample.index_select(0, run_of[:n]).mul(n_layers).add_(m)
            u_m, v_m, ratio, _, ins = tab.cross(row_m, u[:n], v[:n], path_out.take(row_m))
            u = torch.cat([u_m, u[n:]])
            v = torch.cat([v_m, v[n:]])
            gain = torch.cat([gain[:n] * ratio, gain[n:]])
            inside = torch.cat([inside[:n] & ins, inside[n:]])
        return u, v, gain, s_start, inside

    def _useful_range(self, tab, runs: _Runs, u_lo, u_need, iterations: int = 3):
        """The deepest useful point of each run's layer.

        Returns ln of the lowest beam energy in the layer whose scattered particles still
        reach the top of the layer with the energy E_need that gets them to the detector
        above the cut-off, and ln of their energy there (E_need, or less where the whole
        layer contributes); and (R, S, T) at the top of the layer ([n, 3]).  Solves
        φ(u) = R(K E) + c R(E) = R(E_need) + c R(E_hi) (equal path in and out,
        c = cos α / cos β) by Newton's method kept inside a bracket; converged to better
        than 1e-6 in ln E.
        """
        c = self.cos_in / self.cos_out
        weights = self._newton_weights  # (1, c)
        u_hi = runs.u_hi
        n = len(u_hi)
        lnk = runs.constants[:, 0]
        u_need = torch.minimum(u_need, u_hi)
        # one look-up for the target and both ends of the bracket: points (a, b) with
        # φ = R(a) + c R(b) at (E_need, E_hi), the bottom and the top of the layer
        points = torch.stack([u_need, u_lo + lnk, u_hi + lnk, u_hi, u_lo, u_hi], 1).view(n, 2, 3)
        vals = tab.lookup(runs.row.view(n, 1, 1), points)  # [n, 2, 3, 3]
        rng = vals[..., 0]
        phi = torch.add(rng[:, 0], rng[:, 1], alpha=c)  # [n, 3]
        target = phi[:, 0]
        f_lo, f_hi = (phi[:, 1:] - phi[:, :1]).unbind(1)
        # dφ/du = K E/S(K E) + c E/S(E)
        df_hi = (torch.exp(points[..., 2]) / vals[:, :, 2, 1] * weights).sum(-1)
        shift = torch.stack([lnk, torch.zeros_like(lnk)], 1)  # at K·E and E
        rows2 = runs.row[:, None]

        none = f_hi <= 0  # nothing of this layer gets out
        full = f_lo >= 0  # the whole layer contributes
        lo, hi = u_lo, u_hi
        # start with a Newton step from the top of the layer (φ is smooth there), else the
        # secant of the bracket
        x = hi - f_hi / df_hi
        # f_hi >= f_lo; they are equal for an empty layer (hi = lo).  The divisor is kept
        # away from 0 by a where, not a clamp (1e-300 is 0 in float32, and a 0/0 in the
        # untaken branch makes the backward NaN)
        rise = f_hi - f_lo
        secant = hi - f_hi * (hi - lo) / torch.where(rise > 0, rise, 1.0)
        x = torch.where((x >= lo) & (x <= hi), x, secant)
        x = torch.where(torch.isfinite(x), x, 0.5 * (lo + hi)).clamp(lo, hi)
        for _ in range(iterations):
            at = x[:, None] + shift
            vals2 = tab.lookup(rows2, at)
            f = (vals2[..., 0] * weights).sum(-1) - target
            df = (torch.exp(at) / vals2[..., 1] * weights).sum(-1)
            below = f < 0
            lo = torch.where(below, x, lo)
            hi = torch.where(below, hi, x)
            step = x - f / df
            x = torch.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        u_bot = torch.where(none, u_hi, torch.where(full, u_lo, x))
        # exit energy at the layer top from the layer bottom: R(K E_lo) − c (R(E_hi) − R(E_lo))
        u_x_full, _ = tab.invert(
            runs.row, torch.add(phi[:, 1], rng[:, 1, 0], alpha=-c), values=False
        )
        u_x_bot = torch.where(full, u_x_full, u_need)
        return u_bot, torch.where(none, u_hi + lnk, u_x_bot), vals[:, 1, 0]


class Instrument(NamedTuple):
    """Values of the setup that may differ from spectrum to spectrum and that gradients
    flow through (a fit's experiment parameters): each None (the setup's value), a number,
    or a tensor [B].  The quadratic term of the calibration stays the setup's."""

    #: fluence × solid angle (particles·sr); the counts are proportional to it
    fluence_times_solid_angle_sr: torch.Tensor | float | None = None
    #: energy calibration E(χ) = offset + gain·χ + quadratic·χ² (keV, keV/channel)
    offset_keV: torch.Tensor | float | None = None
    gain_keV_per_channel: torch.Tensor | float | None = None
    #: detector resolution, FWHM (keV)
    resolution_fwhm_keV: torch.Tensor | float | None = None
    #: probability that a detected particle piles up with another (:mod:`.pileup`)
    pileup_probability: torch.Tensor | float | None = None
    #: background: flat (counts per channel) and low-energy term (counts per channel at
    #: the cut-off, ∝ 1/E²)
    background_counts: torch.Tensor | float | None = None
    background_low_energy_counts: torch.Tensor | float | None = None


#: per Instrument field: which values are allowed (besides being finite), in words
_INSTRUMENT_RANGES = {
    "fluence_times_solid_angle_sr": (lambda v: v >= 0, ">= 0"),
    "offset_keV": (lambda v: torch.ones_like(v, dtype=torch.bool), "(keV)"),
    "gain_keV_per_channel": (lambda v: v > 0, "> 0"),
    "resolution_fwhm_keV": (lambda v: v > 0, "> 0"),
    "pileup_probability": (lambda v: (v >= 0) & (v < 0.5), "in [0, 0.5)"),
    "background_counts": (lambda v: v >= 0, ">= 0"),
    "background_low_energy_counts": (lambda v: v >= 0, ">= 0"),
}


class _Calibration(NamedTuple):
    """Per-spectrum detector values ([B] tensors) used to assemble the channel spectrum."""

    offset: torch.Tensor
    gain: torch.Tensor
    var_det: torch.Tensor  # keV²
    fluence_factor: torch.Tensor  # relative to the setup's fluence × solid angle
    pileup: torch.Tensor
    background: torch.Tensor
    background_low: torch.Tensor

    def rows(self, i: int, j: int) -> _Calibration:
        return _Calibration(*(x[i:j] for x in self))


class _Runs(NamedTuple):
    """Per (reaction, sample) quantities ([n_runs] each)."""

    reaction: torch.Tensor
    sample: torch.Tensor
    layer: torch.Tensor
    row: torch.Tensor  # table row: sample · L + layer
    u_hi: torch.Tensor  # ln beam energy at the top of the layer
    v_top: torch.Tensor  # beam energy variance there
    constants: torch.Tensor  # [n_runs, 8]: the reaction's constants and Q·Ω·c


def _nothing_scatters(
    ion: str,
    m1: float,
    theta_deg: float,
    structure: Sequence[Sequence[str]],
    species: Sequence[Species],
    names: Sequence[str],
) -> str:
    """Message for a sample in which no isotope can scatter the ion (mass ``m1``, u) into
    the detector angle ``theta_deg``: each element with the largest angle it can reach."""
    reasons = []
    for li, layer in enumerate(structure):
        for n in layer:
            m2 = max(iso.mass_u for iso in species[names.index(n)].isotopes)
            reach = math.degrees(largest_scattering_angle(m1, m2))
            reasons.append(f"sample.layers[{li}].{n} ({m2:.4g} u): {reach:.3g} deg")
    return (
        f"nothing in the sample can scatter the {ion} beam ({m1:.4g} u) into the detector at "
        f"{theta_deg:g} deg: a target atom no heavier than the ion deflects it by at most "
        f"asin(m_target/m_ion), here {', '.join(reasons)}; every simulated spectrum is zero "
        f"(the sample only slows the beam down)"
    )


def _stage(name: str):
    """Label a stage of the simulation in torch profiles (``rbs.<name>``)."""
    return torch.profiler.record_function(f"rbs.{name}")


def node_coordinate(energy_keV: torch.Tensor, knee_keV: float) -> torch.Tensor:
    """Coordinate in which depth nodes are equally spaced: ln E below the knee, linear above
    (continuous with its derivative), so pieces are ∝ E at low and constant at high energy."""
    ln_knee = math.log(knee_keV)
    e = energy_keV.clamp_min(1e-30)
    return torch.where(e < knee_keV, torch.log(e), ln_knee + (e - knee_keV) / knee_keV)


def node_coordinate_inverse(xi: torch.Tensor, knee_keV: float) -> torch.Tensor:
    """Energy (keV) of a :func:`node_coordinate` value."""
    ln_knee = math.log(knee_keV)
    return torch.where(
        xi < ln_knee, torch.exp(xi.clamp(max=ln_knee)), knee_keV * (1.0 + xi - ln_knee)
    )
