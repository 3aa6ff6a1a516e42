"""Batched, differentiable RBS forward simulator.

``RBSSimulator(setup, structure).simulate(areal_densities)`` maps a batch of samples (the
areal density of every element in every layer, 1e15 atoms/cm²) to expected counts per
detector channel.  Everything after construction is vectorised torch code: one call handles
B samples with the same setup and layer/element structure, with no Python loop over samples.

Model (per sample; see DESIGN.md §2):

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
"""

from __future__ import annotations

import contextlib
import math
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
from .experiment import Experiment, ExperimentError, Setup
from .isotopes import ion as resolve_ion
from .isotopes import species as resolve_species
from .reactions import Reaction, layer_reactions
from .spectrum import smoothed_cumulative
from .stopping import LogGrid, electronic_stopping_table, species_nuclear_stopping
from .tables import LayerTables

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

    def __init__(self, setup: Setup, structure: Sequence[Sequence[str]], *,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None):
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
        self.ion = resolve_ion(s.ion, "beam.ion")
        z1, m1 = self.ion.Z, self.ion.mass_u
        theta = math.radians(s.scattering_deg)
        self.cos_in = math.cos(math.radians(s.incidence_deg))
        self.cos_out = math.cos(math.radians(s.exit_angle_deg))
        self.n_layers = len(self.structure)
        names = sorted({n for layer in self.structure for n in layer})
        self.species_names = names
        sp = [resolve_species(n, f"sample element {n!r}") for n in names]
        n_sp = len(sp)

        # energy grid (uniform in ln E) covering the cut-off to the beam energy
        grid = LogGrid(_GRID_E_MIN, _GRID_DECADES, s.numerics.grid_points_per_decade)
        e_lo = 0.9 * s.energy_cutoff_keV / m1
        e_hi = s.beam_energy_keV / m1
        if e_lo < 1.2 * _GRID_E_MIN:
            raise ExperimentError(
                f"energy_cutoff_keV: {s.energy_cutoff_keV} keV is below the stopping tables "
                f"(at least {1.34 * _GRID_E_MIN * m1:.3g} keV for {s.ion})")
        i_lo = int(math.floor(math.log(e_lo / _GRID_E_MIN) / grid.step))
        i_hi = int(math.ceil(math.log(e_hi / _GRID_E_MIN) / grid.step)) + 2
        if i_hi >= grid.size:
            raise ExperimentError(
                f"beam.energy_keV: {s.beam_energy_keV} keV is above the stopping tables "
                f"({_GRID_E_MIN * 10 ** _GRID_DECADES * m1 / 1000:.3g} MeV for {s.ion})")
        self._u0 = math.log(_GRID_E_MIN * m1) + i_lo * grid.step
        self._grid_size = i_hi - i_lo + 1
        self._h = grid.step
        energies = m1 * grid.values()[i_lo:i_hi + 1]

        stop = np.empty((n_sp, energies.size))
        for j, spc in enumerate(sp):
            table = electronic_stopping_table(z1, spc.Z, grid)[i_lo:i_hi + 1]
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

        dev, dt = self.device, self.dtype
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=dt, device=dev)  # noqa: E731
        self._stop_species = as_t(stop)                      # [S, G]
        self._omega2_species = as_t(omega2)                  # [S]
        self._columns = torch.as_tensor(columns, device=dev)
        self._default_fraction = as_t(default_fraction)      # [L, S]
        self._n_species = n_sp
        r = self.reactions
        self._r_layer = torch.as_tensor([x.layer for x in r], device=dev, dtype=torch.long)
        self._r_species = torch.as_tensor(species_column, device=dev, dtype=torch.long)
        self._r_abundance = as_t([x.abundance for x in r])
        self._r_k = as_t([x.kinematic_factor for x in r])
        self._r_kvar = as_t([x.kinematic_variance for x in r])
        self._r_rutherford = as_t([x.rutherford_lab_keV2_mb for x in r])
        # screening constants of each channel's main isotope
        self._r_cm = as_t([x.channel.cm_fraction for x in r])
        self._r_v1 = as_t([ANDERSEN_V1_KEV * x.channel.z1 * x.channel.z2 * math.sqrt(
            x.channel.z1 ** (2 / 3) + x.channel.z2 ** (2 / 3)) for x in r])
        self._r_half = as_t([2.0 * math.sin(x.channel.theta_cm / 2.0) for x in r])
        self._r_lecuyer = as_t([LECUYER_KEV * x.channel.z1 * x.channel.z2 ** (4 / 3) for x in r])

        self._reactions_deepest_first = torch.as_tensor(
            sorted(range(len(r)), key=lambda i: -r[i].layer), dtype=torch.long, device=dev)

        # detector
        det = s.detector
        self._var_det = (det.resolution_fwhm_keV / FWHM_PER_SIGMA) ** 2
        self._var_beam = (s.beam_spread_fwhm_keV / FWHM_PER_SIGMA) ** 2
        chi_cut = float(det.channel_coordinate(s.energy_cutoff_keV))
        self._edge0 = min(0, int(math.floor(chi_cut)) - 1)
        self._n_edges = det.channels + 1 - self._edge0
        # Q·Ω·(mb → cm²)·(TFU → atoms/cm²)
        self._yield_scale = s.fluence_times_solid_angle_sr * MILLIBARN_CM2 * TFU
        upper = det.channel_energy(torch.arange(1, det.channels + 1, dtype=dt, device=dev))
        self._above_cutoff = (upper > s.energy_cutoff_keV).to(dt)

    # ------------------------------------------------------------------ physics pieces
    def _cross_section(self, reaction: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """σ (mb/sr) of reactions ``reaction`` at lab energies ``energy`` (same shape)."""
        sigma = self._r_rutherford[reaction] / (energy * energy)
        scr = self.setup.physics.screening
        if scr == "andersen":
            v = self._r_v1[reaction] / (energy * self._r_cm[reaction])
            den = 1.0 + v + (v / self._r_half[reaction]) ** 2
            sigma = sigma * (1.0 + 0.5 * v) ** 2 / (den * den)
        elif scr == "lecuyer":
            sigma = sigma * (1.0 - self._r_lecuyer[reaction] / (energy * self._r_cm[reaction]))
        return sigma

    def _layer_composition(self, params: torch.Tensor):
        batch = params.shape[0]
        amounts = torch.zeros(batch, self.n_layers * self._n_species, dtype=self.dtype,
                              device=self.device).index_add(1, self._columns, params)
        amounts = amounts.view(batch, self.n_layers, self._n_species)
        thickness = amounts.sum(-1)
        safe = torch.where(thickness > 0, thickness, torch.ones_like(thickness))
        fraction = torch.where((thickness > 0)[..., None], amounts / safe[..., None],
                               self._default_fraction.expand_as(amounts))
        return thickness, fraction

    # ------------------------------------------------------------------ main entry
    def simulate(self, areal_densities) -> torch.Tensor:
        """Expected (noise-free) counts per channel.

        Args:
            areal_densities: [B, D] or [D] areal densities (TFU) in the order of
                :attr:`parameter_names`; a tensor (gradients flow through) or array-like.

        Returns:
            [B, channels] (or [channels]) tensor of expected counts.
        """
        params = torch.as_tensor(areal_densities, dtype=self.dtype, device=self.device)
        single = params.dim() == 1
        if single:
            params = params[None]
        if params.dim() != 2 or params.shape[1] != self.n_parameters:
            raise ValueError(f"areal_densities: expected shape [B, {self.n_parameters}] "
                             f"({', '.join(self.parameter_names)}), got {tuple(params.shape)}")
        with torch.no_grad():
            bad = ~torch.isfinite(params) | (params < 0)
            if bool(bad.any()):
                b, d = (int(x) for x in torch.nonzero(bad)[0])
                raise ValueError(
                    f"areal_densities[{b}, {d}] ({self.parameter_names[d]}): expected a finite "
                    f"number >= 0 (1e15 at/cm2), got {float(params[b, d])}")
        # blocks of samples whose working set (tables of every layer, nodes of every
        # channel) fits in cache; the result does not depend on the blocking
        per_sample = len(self.reactions) * 16 + self.n_layers * self._grid_size
        chunk = max(1, _TARGET_ELEMENTS // per_sample)
        # without derivatives to track, inference mode saves a fifth of the time on small batches
        tracked = params.requires_grad or forward_ad.unpack_dual(params).tangent is not None
        with contextlib.nullcontext() if tracked else torch.inference_mode():
            parts = [self._simulate(params[i:i + chunk])
                     for i in range(0, params.shape[0], chunk)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out[0] if single else out

    def _simulate(self, params: torch.Tensor) -> torch.Tensor:
        batch = params.shape[0]
        n_layers = self.n_layers
        with _stage("tables"):
            thickness, fraction = self._layer_composition(params)        # [B, L], [B, L, S]
            stopping = (fraction[..., None] * self._stop_species).sum(-2)  # [B, L, G]
            omega2 = (fraction * self._omega2_species).sum(-1)            # [B, L]
            tab = LayerTables.build(stopping.reshape(batch * n_layers, -1), omega2.reshape(-1),
                                    self._u0, self._h)
        with _stage("layer_tops"):
            u_top, v_top, u_need = self._layer_tops(tab, thickness)      # [B, L+1] ×2, [B, L]

        # one "run" of depth nodes per (reaction, sample); deepest layers first, so that the
        # particles that still have to cross layer m always form a prefix of the node list
        with _stage("node_placement"):
            runs = self._runs(batch, fraction, u_top, v_top)
            u_need_run = u_need[runs.sample, runs.layer]
            u_bot, u_x_bot = self._useful_range(tab, runs, u_top[runs.sample, runs.layer + 1],
                                                u_need_run)
            nodes_per_run, u_in = self._place_nodes(runs, u_bot, u_x_bot, u_need_run)
            run_of = torch.repeat_interleave(
                torch.arange(len(nodes_per_run), device=self.device), nodes_per_run)
        with _stage("exit_paths"):
            nodes = self._follow(tab, thickness, runs, run_of, u_in, nodes_per_run)

        # yield density dN/dE_det at the nodes and counts of the pieces between them
        with _stage("yields"):
            r = runs.reaction[run_of]
            e_in = torch.exp(u_in)
            scale = self._yield_scale * runs.concentration[run_of]
            sigma_in = self._cross_section(r, e_in)
            k = self._r_k[r]
            dedx = nodes.gain * (k * nodes.s_beam / self.cos_in + nodes.s_start / self.cos_out)
            density = torch.where(nodes.inside, scale * sigma_in / self.cos_in / dedx,
                                  torch.zeros_like(dedx))                 # counts/keV
            same_run = run_of[1:] == run_of[:-1]                          # piece j: nodes j, j+1
            e_mid = 0.5 * (e_in[1:] + e_in[:-1])
            s_mid = tab.stopping(runs.row[run_of[1:]], torch.log(e_mid))
            g_in = sigma_in / nodes.s_beam
            g_mid = self._cross_section(r[1:], e_mid) / s_mid
            counts = scale[1:] * (e_in[:-1] - e_in[1:]) / 6.0 * (
                g_in[:-1] + 4.0 * g_mid + g_in[1:])
            counts = torch.where(same_run & nodes.inside[1:] & nodes.inside[:-1], counts,
                                 torch.zeros_like(counts))
        return self._assemble(batch, runs.sample[run_of], nodes.u_det, nodes.variance, density,
                              counts, same_run)

    def _assemble(self, batch, sample, u_det, variance, density, counts, same_run):
        """Channel spectrum [B, C] of the piecewise-linear densities of all runs.

        ``sample``, ``u_det``, ``variance`` and ``density`` are per node (ln keV, keV²,
        counts/keV); ``counts`` and ``same_run`` per pair of consecutive nodes (a piece when
        both belong to one run).
        """
        det = self.setup.detector
        chi = det.channel_coordinate(torch.exp(u_det))
        local_gain = det.gain_keV_per_channel + 2.0 * det.quadratic_keV_per_channel2 * chi
        dens_ch = density * local_gain                                    # counts/channel
        var_ch = (variance + self._var_det) / (local_gain * local_gain)   # channel²
        width = chi[:-1] - chi[1:]                                        # >= 0 within a run
        ok = same_run & (width > 0)
        safe_w = torch.where(ok, width, torch.ones_like(width))
        mean = torch.where(ok, counts / safe_w, torch.zeros_like(width))
        slope = torch.where(ok, (dens_ch[:-1] - dens_ch[1:]) / safe_w, torch.zeros_like(width))
        pad = torch.zeros_like(mean[:1])
        upper = torch.cat([pad, mean - 0.5 * slope * width])             # piece above node
        lower = torch.cat([mean + 0.5 * slope * width, pad])             # piece below node
        jump = upper - lower
        kink = torch.cat([pad, slope]) - torch.cat([slope, pad])
        cum = smoothed_cumulative(chi - self._edge0, jump, kink, var_ch, sample, batch,
                                  self._n_edges, self.setup.numerics.gaussian_cutoff_sigmas)
        spectrum = cum[:, 1:] - cum[:, :-1]                               # float64
        spectrum = spectrum[:, -self._edge0:][:, :det.channels]
        # differences of the cumulative counts leave ±1e-10 rounding where there is nothing
        return spectrum.clamp(min=0.0).to(self.dtype) * self._above_cutoff

    def _layer_tops(self, tab: LayerTables, thickness):
        """At the top of every layer (and below the last one, [B, L+1]): ln(beam energy) and
        the beam's energy variance; and ([B, L]) ln of the energy a particle leaving through
        the top of the layer needs to reach the detector with the cut-off energy (+inf where
        none can).  The two recursions run together, one table call per layer."""
        batch = thickness.shape[0]
        rows = (torch.arange(batch, device=self.device) * self.n_layers)[:, None].expand(batch, 2)
        # column 0: the beam going in; column 1: the cut-off energy carried back in
        state = torch.tensor([math.log(self.setup.beam_energy_keV),
                              math.log(self.setup.energy_cutoff_keV)], dtype=self.dtype,
                             device=self.device).expand(batch, 2)
        direction = torch.tensor([-1.0 / self.cos_in, 1.0 / self.cos_out], dtype=self.dtype,
                                 device=self.device)
        var = torch.full((batch,), self._var_beam, dtype=self.dtype, device=self.device)
        u, v, need = [state[:, 0]], [var], [state[:, 1]]
        for li in range(self.n_layers):
            row = rows + li
            before = tab.lookup(row, state)
            r_in = before[..., 0] + thickness[:, li, None] * direction
            u_out, after, _ = tab.invert(row, r_in)
            ratio = after[:, 0, 1] / before[:, 0, 1]
            var = ratio * ratio * var + tab.omega2[row[:, 0]] * after[:, 0, 1] ** 2 * (
                before[:, 0, 2] - after[:, 0, 2])
            # beyond the top of the table nothing can get out
            up = torch.where(r_in[:, 1] < tab.range_top[row[:, 1]], u_out[:, 1],
                             torch.full_like(var, math.inf))
            state = torch.stack([u_out[:, 0], up], 1)
            u.append(u_out[:, 0])
            v.append(var)
            need.append(up)
        return torch.stack(u, 1), torch.stack(v, 1), torch.stack(need[:-1], 1)

    def _runs(self, batch, fraction, u_top, v_top) -> _Runs:
        """Per-(reaction, sample) quantities, reactions ordered deepest layer first."""
        order = self._reactions_deepest_first
        reaction = order.repeat_interleave(batch)
        sample = torch.arange(batch, device=self.device).repeat(len(order))
        layer = self._r_layer[reaction]
        conc = (fraction.reshape(batch, -1)[sample, self._r_species[reaction]]
                * self._r_abundance[reaction])
        return _Runs(reaction, sample, layer, sample * self.n_layers + layer,
                     u_top[sample, layer], v_top[sample, layer], conc)

    def _place_nodes(self, runs: _Runs, u_bot, u_x_bot, u_need):
        """Number of nodes of every run and ln(beam energy) of all nodes (flat, run by run).

        The pieces between nodes should be at most piece_width_keV wide in detected energy
        and at most piece_relative_width of it (:func:`node_coordinate`).  Detected energies
        are predicted from the exit energies E_x at the top of the run's layer: E_det ≈ E_x
        − (E_need − E_cut), the energy the layers above take from a particle that just
        reaches the cut-off (exact for the surface layer).  In between the two ends, E_det
        is taken as linear in beam energy.
        """
        num = self.setup.numerics
        n_runs = len(runs.reaction)
        k = self._r_k[runs.reaction]
        e_need = torch.exp(torch.where(torch.isfinite(u_need), u_need, runs.u_hi))
        loss_above = (e_need - self.setup.energy_cutoff_keV).clamp(min=0.0)
        e_x = torch.stack([k * torch.exp(runs.u_hi), torch.exp(u_x_bot)], 1)
        e_ends = (e_x - loss_above[:, None]).clamp(min=self.setup.energy_cutoff_keV)
        knee = num.piece_width_keV / num.piece_relative_width
        xi = node_coordinate(e_ends, knee) / num.piece_relative_width
        pieces = (xi[:, 0] - xi[:, 1]).ceil().clamp(1, num.max_nodes_per_layer - 1).long()
        counts = pieces + 1
        run_of = torch.repeat_interleave(torch.arange(n_runs, device=self.device), counts)
        start = torch.cumsum(counts, 0) - counts
        step = (torch.arange(len(run_of), device=self.device) - start[run_of]).to(self.dtype)
        frac = step / pieces[run_of].to(self.dtype)
        xi_top, xi_bot = xi[run_of, 0], xi[run_of, 1]
        e_det = node_coordinate_inverse((xi_top - frac * (xi_top - xi_bot))
                                        * num.piece_relative_width, knee)
        top, bot = e_ends[run_of, 0], e_ends[run_of, 1]
        frac = torch.where(top > bot, (top - e_det) / (top - bot).clamp_min(1e-30), frac)
        e_hi, e_lo = torch.exp(runs.u_hi[run_of]), torch.exp(u_bot[run_of])
        return counts, torch.log(e_hi - frac.clamp(0.0, 1.0) * (e_hi - e_lo))

    def _follow(self, tab: LayerTables, thickness, runs: _Runs, run_of, u_in, nodes_per_run):
        """Follow particles scattered at beam energies exp(u_in) (one per node; node i
        belongs to run ``run_of[i]``, nodes ordered by run) out of the sample."""
        n_layers = self.n_layers
        row = runs.row[run_of]
        sample = runs.sample[run_of]
        r = runs.reaction[run_of]
        # beam energy variance at the node: non-statistical broadening and straggling since
        # the top of the layer
        both = tab.lookup(torch.cat([runs.row, row]), torch.cat([runs.u_hi, u_in]))
        top, here = both[:len(runs.row)][run_of], both[len(runs.row):]
        depth = self.cos_in * (top[:, 0] - here[:, 0])                    # TFU below layer top
        ratio = here[:, 1] / top[:, 1]
        v_in = (ratio * ratio * runs.v_top[run_of]
                + tab.omega2[row] * here[:, 1] ** 2 * (top[:, 2] - here[:, 2]))
        # scattering, then out through the rest of the own layer
        k = self._r_k[r]
        u, v, gain, s_start, inside = tab.cross(row, u_in + torch.log(k), k * k * v_in,
                                                depth / self.cos_out)
        # and through every layer above; deeper layers come first in the node list
        layer_counts = torch.zeros(n_layers, dtype=torch.long, device=self.device).index_add(
            0, runs.layer, nodes_per_run)
        for m in range(n_layers - 2, -1, -1):
            n = int(layer_counts[m + 1:].sum())
            if n == 0:
                continue
            b = sample[:n]
            u_m, v_m, ratio, _, ins = tab.cross(b * n_layers + m, u[:n], v[:n],
                                                thickness[b, m] / self.cos_out)
            u = torch.cat([u_m, u[n:]])
            v = torch.cat([v_m, v[n:]])
            gain = torch.cat([gain[:n] * ratio, gain[n:]])
            inside = torch.cat([inside[:n] & ins, inside[n:]])
        # merged isotopes: spread of K·E_beam carried to the detector
        spread = torch.exp(u_in) * gain
        v = v + self._r_kvar[r] * spread * spread
        return _Nodes(u, v, gain, s_start, here[:, 1], inside)

    def _useful_range(self, tab, runs: _Runs, u_lo, u_need, iterations: int = 3):
        """The deepest useful point of each run's layer.

        Returns ln of the lowest beam energy in the layer whose scattered particles still
        reach the top of the layer with the energy E_need that gets them to the detector
        above the cut-off, and ln of their energy there (E_need, or less where the whole
        layer contributes).  Solves R(K E) + c R(E) = R(E_need) + c R(E_hi) (equal path in
        and out, c = cos α / cos β) by Newton's method kept inside a bracket; converged to
        better than 1e-6 in ln E.
        """
        c = self.cos_in / self.cos_out
        u_hi = runs.u_hi
        n = len(u_hi)
        k = self._r_k[runs.reaction]
        lnk = torch.log(k)
        # one look-up for the target and both ends of the bracket
        vals = tab.lookup(runs.row[:, None].expand(n, 6),
                          torch.stack([u_hi, u_need.clamp(max=u_hi), u_lo + lnk, u_lo,
                                       u_hi + lnk, u_hi], -1))
        v = vals[..., 0]
        target = v[:, 1] + c * v[:, 0]
        f_lo = v[:, 2] + c * v[:, 3] - target
        f_hi = v[:, 4] + c * v[:, 5] - target
        df_hi = torch.exp(u_hi) * (k / vals[:, 4, 1] + c / vals[:, 5, 1])
        rows2 = runs.row[:, None].expand(n, 2)
        shift = torch.stack([lnk, torch.zeros_like(k)], -1)             # at K·E and E

        def phi(u):
            vals = tab.lookup(rows2, u[:, None] + shift)
            # φ and dφ/du = E (K/S(KE) + c/S(E))
            return (vals[:, 0, 0] + c * vals[:, 1, 0] - target,
                    torch.exp(u) * (k / vals[:, 0, 1] + c / vals[:, 1, 1]))

        none = (f_hi <= 0) | ~torch.isfinite(u_need)    # nothing of this layer gets out
        full = f_lo >= 0                                 # the whole layer contributes
        lo, hi = u_lo, u_hi
        # start with a Newton step from the top of the layer (φ is smooth there), else the
        # secant of the bracket
        x = hi - f_hi / df_hi
        secant = hi - f_hi * (hi - lo) / (f_hi - f_lo).clamp_min(1e-300)
        x = torch.where((x >= lo) & (x <= hi), x, secant)
        x = torch.where(torch.isfinite(x), x, 0.5 * (lo + hi)).clamp(lo, hi)
        for _ in range(iterations):
            f, df = phi(x)
            below = f < 0
            lo = torch.where(below, x, lo)
            hi = torch.where(below, hi, x)
            step = x - f / df
            x = torch.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        u_bot = torch.where(none, u_hi, torch.where(full, u_lo, x))
        # exit energy at the layer top from the layer bottom: R(K E_lo) − c (R(E_hi) − R(E_lo))
        u_x_full = tab.invert(runs.row, f_lo + target - c * v[:, 0])[0]
        u_x_bot = torch.where(full, u_x_full, u_need.clamp(max=u_hi))
        return u_bot, torch.where(none, u_hi + lnk, u_x_bot)


class _Runs(NamedTuple):
    """Per (reaction, sample) quantities ([n_runs] each)."""

    reaction: torch.Tensor
    sample: torch.Tensor
    layer: torch.Tensor
    row: torch.Tensor            # table row: sample · L + layer
    u_hi: torch.Tensor           # ln beam energy at the top of the layer
    v_top: torch.Tensor          # beam energy variance there
    concentration: torch.Tensor  # atom fraction of the channel's isotope(s) in the layer


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
    return torch.where(xi < ln_knee, torch.exp(xi.clamp(max=ln_knee)),
                       knee_keV * (1.0 + xi - ln_knee))


class _Nodes(NamedTuple):
    """Particles followed from depth nodes to the detector (one entry per node)."""

    u_det: torch.Tensor      # ln(detected energy / keV)
    variance: torch.Tensor   # energy variance from beam spread and straggling, keV²
    gain: torch.Tensor       # dE_det / dE_start from just after the scattering to the detector
    s_start: torch.Tensor    # stopping of the own layer at the start energy K·E_beam
    s_beam: torch.Tensor     # stopping of the own layer at the beam energy
    inside: torch.Tensor     # False where the particle stopped on the way out
