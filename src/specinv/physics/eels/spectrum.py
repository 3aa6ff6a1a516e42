"""Core-loss EELS spectra of given compositions and conditions (Annys et al. 2023, Fig. 2).

A spectrum on channels 0 … C−1 (energy loss i × step, 1 eV as the paper) is built as:

1. every *visible* edge set (an element present, its onset at least 10 eV after the
   spectrum's start and 25 eV before its end) contributes its photoabsorption cross section
   (:func:`~.edges.edge_table`) times the element's amount, moved by a random chemical shift
   of the set and the spectrum's instrumental shift (whole channels), plus a generic fine
   structure and, where the set has them, white lines (:mod:`.finestructure`);
2. the sum becomes an energy-loss cross section in the dipole approximation for the beam
   energy, convergence and collection angles (:mod:`.scattering`);
3. plural scattering: convolution with a generic low-loss spectrum (:mod:`.lowloss`);
4. scaled so that the spectrum's most visible set has the jump ratio ``jump_ratio`` (the
   largest ratio of the set's single scattering, without fine structure, to the background
   5–100 eV above its onset), and added to a power-law background A (E/E_start)^−r with A
   counts at the start;
5. zero outside [start, end] (the paper's zero padding).  Poisson noise and the
   normalisation to the maximum are the data pipeline's (noise model, preprocessing).

The random numbers of step 1 (shifts, peak positions, weights) come from a generator
seeded with (the spectrum's ``seed``, the set's index), so a spectrum is the same in any
batch.  Conditions are columns of a parameter array, :data:`CONDITIONS` after the amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .edges import ELEMENT_Z, dataset_edge_sets, edge_table, element_symbols
from .finestructure import fine_structure, white_lines
from .lowloss import plural_scattering
from .scattering import dipole_cross_section

#: (name, unit) of the conditions of a spectrum, in the order of the parameter columns
CONDITIONS = (
    ("beam_energy_kV", "kV"),
    ("convergence_mrad", "mrad"),
    ("collection_mrad", "mrad"),
    ("start_eV", "eV"),
    ("end_eV", "eV"),
    ("zlp_fwhm_eV", "eV"),
    ("plasmon_eV", "eV"),
    ("plasmon_fwhm_eV", "eV"),
    ("n_plasmons", "1"),
    ("thickness_over_mfp", "1"),
    ("jump_ratio", "1"),
    ("background_exponent", "1"),
    ("log10_background", "log10(counts)"),
    ("fine_structure_window_eV", "eV"),
    ("fine_structure_degree", "1"),
    ("fine_structure_scale", "1"),
    ("atomic_diameter_pm", "pm"),
    ("instrumental_shift_eV", "eV"),
    ("seed", "1"),
)
#: a visible set's onset lies this far after the start and before the end (eV)
MARGIN_BEFORE_EV, MARGIN_AFTER_EV = 10.0, 25.0
#: window (eV) above the onset over which a set's jump ratio is measured (its largest value
#: there: delayed edges, e.g. Sr M4,5, peak tens of eV above the onset)
_JUMP_WINDOW_EV = (5, 100)
#: white lines are this many times (at most) the edge's level above the onset
WHITE_LINE_MAX_SCALE = 10.0


@dataclass(frozen=True)
class SimulatorSettings:
    """Settings of the simulator that are not drawn per spectrum.

    Attributes:
        n_channels: channels of a spectrum (3072: 0 … 3071 eV).
        step_eV: energy per channel.
        chemical_shift_eV: a set's chemical shift is a whole number of eV in ± this.
    """

    n_channels: int = 3072
    step_eV: float = 1.0
    chemical_shift_eV: int = 5

    def __post_init__(self):
        if self.n_channels < 128:
            raise ValueError(f"n_channels: expected >= 128, got {self.n_channels}")
        if self.step_eV != 1.0:
            raise ValueError(
                f"step_eV: the edge table and the whole-channel shifts need 1 eV channels, "
                f"got {self.step_eV}"
            )
        if self.chemical_shift_eV < 0:
            raise ValueError(f"chemical_shift_eV: expected >= 0, got {self.chemical_shift_eV}")


class EELSSimulator:
    """Expected counts of core-loss spectra; parameters [B, 80 + len(CONDITIONS)]: the
    elements' amounts (Be … Bi; relative numbers of atoms, 0 where absent) then the
    conditions."""

    def __init__(self, settings: SimulatorSettings | None = None, *, dtype=torch.float64):
        self.settings = settings or SimulatorSettings()
        self.dtype = dtype
        self.symbols = element_symbols()
        self.sets = dataset_edge_sets()
        self.table = edge_table(self.settings.n_channels, self.settings.step_eV)
        index = {s: i for i, s in enumerate(self.symbols)}
        self.set_element = np.array([index[s.symbol] for s in self.sets])
        self.set_onset = np.array([s.onset_eV for s in self.sets])
        self.energy = np.arange(self.settings.n_channels) * self.settings.step_eV
        self.column = {n: len(ELEMENT_Z) + i for i, (n, _) in enumerate(CONDITIONS)}

    @property
    def n_elements(self) -> int:
        return len(self.symbols)

    def condition(self, params: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(params)[:, self.column[name]]

    # ------------------------------------------------------------------ what is visible
    def visible_sets(self, params: np.ndarray) -> np.ndarray:
        """[B, sets] True where the set's element is present and its onset lies at least
        10 eV after the start and 25 eV before the end."""
        p = np.asarray(params, dtype=float)
        present = p[:, : self.n_elements][:, self.set_element] > 0
        start = self.condition(p, "start_eV")[:, None]
        end = self.condition(p, "end_eV")[:, None]
        inside = (self.set_onset >= start + MARGIN_BEFORE_EV) & (
            self.set_onset <= end - MARGIN_AFTER_EV
        )
        return present & inside

    def labels(self, params: np.ndarray) -> np.ndarray:
        """[B, elements] 1 where at least one of the element's edge sets is visible."""
        visible = self.visible_sets(params)
        out = np.zeros((visible.shape[0], self.n_elements), dtype=np.int8)
        for s in range(visible.shape[1]):
            out[:, self.set_element[s]] |= visible[:, s]
        return out

    # ------------------------------------------------------------------ spectra
    def _set_signal(self, p: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(photoabsorption with fine structure on the channels, the same without it,
        shifted onset (eV)) of set ``s`` in a spectrum of parameters ``p``."""
        cfg, col = self.settings, self.column
        rng = np.random.default_rng([int(p[col["seed"]]), s])
        shift = int(rng.integers(-cfg.chemical_shift_eV, cfg.chemical_shift_eV + 1)) + int(
            round(p[col["instrumental_shift_eV"]])
        )
        row = np.zeros(cfg.n_channels)
        if shift >= 0:
            row[shift:] = self.table[s, : cfg.n_channels - shift]
        else:
            row[:shift] = self.table[s, -shift:]
        onset = self.set_onset[s] + shift
        plain = row.copy()
        window = float(p[col["fine_structure_window_eV"]])
        above = (self.energy >= onset) & (self.energy <= onset + window)
        edge_level = float(row[above].mean()) if above.any() else 0.0
        local = self.energy[(self.energy > onset - 20) & (self.energy < onset + window + 60)]
        first = int(local[0] / cfg.step_eV)
        structure = float(p[col["fine_structure_scale"]]) * fine_structure(
            local,
            onset,
            rng,
            window_eV=window,
            degree=int(round(p[col["fine_structure_degree"]])),
            atomic_diameter_nm=float(p[col["atomic_diameter_pm"]]) * 1e-3,
        )
        spin_orbit = self.sets[s].white_lines_eV
        if spin_orbit:
            height = rng.uniform(1.0, WHITE_LINE_MAX_SCALE)
            structure = structure + height * white_lines(
                local,
                np.asarray(spin_orbit) + shift,
                self.sets[s].core_width_eV,
                rng,
            )
        row[first : first + local.size] += edge_level * structure
        return row, plain, onset

    def single_scattering(
        self, params: np.ndarray, conversion: np.ndarray, background: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The visible sets' photoabsorption with their shifts and fine structures, weighted
        by the amounts, [B, C] (cm²), and each spectrum's largest jump ratio [B] for a core
        loss of unit scale: over its visible sets and the energies 5–100 eV above their
        onsets, the set's single scattering without fine structure (photoabsorption ×
        ``conversion`` [B, C], the dipole factor) over ``background`` [B, C]."""
        p = np.asarray(params, dtype=float)
        visible = self.visible_sets(p)
        total = np.zeros((p.shape[0], self.settings.n_channels))
        jump = np.zeros(p.shape[0])
        lo_eV, hi_eV = _JUMP_WINDOW_EV
        for b, s in zip(*np.nonzero(visible), strict=True):
            row, plain, onset = self._set_signal(p[b], s)
            amount = p[b, self.set_element[s]]
            total[b] += amount * row
            # a property of the sample and the microscope, not of the detector range: the
            # window may reach past the spectrum's end
            w = slice(int(onset + lo_eV), min(int(onset + hi_eV), self.settings.n_channels))
            ratio = amount * plain[w] * conversion[b, w] / background[b, w]
            jump[b] = max(jump[b], float(ratio.max(initial=0.0)))
        return total, jump

    def simulate(self, params: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Expected counts [B, C] (module docstring)."""
        p = np.asarray(params.detach().cpu() if torch.is_tensor(params) else params, float)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=self.dtype)  # noqa: E731
        c = lambda n: t(self.condition(p, n))  # noqa: E731
        beam = c("beam_energy_kV") * 1e3
        alpha, beta = c("convergence_mrad") * 1e-3, c("collection_mrad") * 1e-3
        energy = t(np.maximum(self.energy, 1.0))
        start, end = c("start_eV"), c("end_eV")
        amplitude = 10.0 ** c("log10_background")
        exponent = c("background_exponent")
        background = amplitude[:, None] * (energy[None, :] / start[:, None]) ** -exponent[:, None]
        conversion = dipole_cross_section(
            torch.ones_like(background),
            energy[None, :],
            beam[:, None],
            alpha[:, None],
            beta[:, None],
        )
        photo, jump = self.single_scattering(p, conversion.numpy(), background.numpy())
        recorded = plural_scattering(
            t(photo) * conversion,
            self.settings.step_eV,
            c("zlp_fwhm_eV"),
            c("plasmon_eV"),
            c("plasmon_fwhm_eV"),
            c("n_plasmons"),
            c("thickness_over_mfp"),
        )
        # the spectrum's jump ratio is its most visible set's (single_scattering)
        jump = t(jump)
        scale = torch.where(jump > 0, c("jump_ratio") / jump.clamp_min(1e-300), 0.0)
        counts = background + scale[:, None] * recorded.clamp_min(0.0)
        inside = (energy[None, :] >= start[:, None]) & (energy[None, :] <= end[:, None])
        return torch.where(inside, counts, torch.zeros((), dtype=self.dtype))
