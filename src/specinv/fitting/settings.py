"""The settings of the fits: config section ``fitting`` (light to import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, schema_default

#: the fit statistics: how a simulated spectrum s is compared with an observed one x (see
#: :class:`~specinv.fitting.problem.SpectrumFitProblem`)
STATISTICS = ("poisson", "deviance", "log10")

#: The fits of the test spectra; ``ml_`` stands for the network's kind (``mdn_autofit``).
FIT_METHODS = ("autofit", "ml_autofit", "ml_refine")
#: where the refinement (``ml_refine``) may start: the network's estimate or the result of
#: network + Autofit
REFINE_STARTS = ("network", "ml_autofit")
#: the prior of the refinement: none, or the network's estimate and uncertainty
REFINE_PRIORS = ("none", "network")


def method_name(method: str, kind: str) -> str:
    """The name of a fit method for the model kind ``kind``: ``ml_autofit`` ->
    ``mdn_autofit`` (file names, table labels)."""
    return method.replace("ml_", f"{kind}_", 1) if method.startswith("ml_") else method


def _default(key: str):
    return field(default_factory=lambda: schema_default("fitting", key))


@dataclass(frozen=True)
class FitSettings:
    """Config section ``fitting`` (defaults: those of the workflow schema, the paper's
    Autofit and ML + Autofit).

    Attributes:
        spectra: number of test spectra fitted (the first ones of the test split; 0 = all).
        autofit_spectra: the Autofit (the costliest method: 200·D evaluations from a fixed
            start) fits only the first this many of them (0 = all of them); the other
            methods' rows in the comparison are then given on both sets of spectra.
        shards: Nelder–Mead jobs per method (each fits a contiguous part).
        autofit_evaluations_per_parameter: Autofit's budget is this × D evaluations (200).
        ml_autofit_evaluations_per_parameter: ML + Autofit's budget × D (50).
        restart_every: Nelder–Mead restarts from its best point after this many (500).
        autofit_start: ``centre`` of the prior box (per parameter), or ``mean`` of the
            training parameters: the documented fixed start of the Autofit.
        statistic: what every fit minimises (``poisson``, ``deviance``, ``log10``; None: the
            technique's :attr:`~specinv.techniques.base.Technique.fit_statistic`).
        refine_statistic: what the gradient refinement minimises (None: ``statistic``);
            ``deviance``, the Poisson likelihood, makes it a maximum-likelihood (with
            ``refine_prior``: maximum a posteriori) fit.
        refine_from: where the refinement starts: ``network`` (the network's estimate) or
            ``ml_autofit`` (the result of network + Autofit, whose simulations and wall
            time then count in the refinement's).
        refine_prior: ``none``, or ``network``: the refinement minimises the statistic plus
            Σ ((estimate − y) / std)² of the network's estimate and uncertainty (a maximum
            a posteriori fit that stays at the estimate where the spectrum says nothing).
        refine_iterations: Levenberg–Marquardt iterations at most.
        refine_chi2_tolerance: the refinement of a spectrum stops when a step lowers its
            statistic by less than this (absolute; Δχ² = 1 is a one-σ change of a
            parameter; 0.1).
        refine_starts: starts per spectrum: the network's estimate and ``refine_starts − 1``
            perturbations of it (see :func:`~specinv.fitting.starts.perturbed_starts`), each
            refined for ``refine_screen_iterations`` steps; the best goes on.
        refine_start_spread: standard deviation of the perturbations, as a fraction of each
            parameter's prior range.
        refine_screen_iterations: steps of every start before the best is chosen.
        seed: seed of the perturbations (with the spectrum's sample index).
        refine_jacobian: ``finite-difference`` or ``forward-mode``.
        refine_broyden: update the Jacobian by Broyden's formula after accepted steps (see
            :func:`refine_levenberg_marquardt`) instead of evaluating it every step.
        posterior_spectra: the reference posterior (:mod:`specinv.fitting.posterior`) of
            the first this many fitted spectra (0: none).
        posterior_walkers: walkers per spectrum (0: 2·D + 2).
        posterior_steps, posterior_burn, posterior_thin: steps of every ensemble, the
            first ones discarded, and every how-many-th of the rest kept.
        batch_size: parameter sets per simulator call.
        device: ``cpu`` or ``cuda`` (the refinement; Nelder–Mead runs where the simulator
            does).
    """

    spectra: int = _default("spectra")
    autofit_spectra: int = _default("autofit_spectra")
    shards: int = _default("shards")
    autofit_evaluations_per_parameter: int = _default("autofit_evaluations_per_parameter")
    ml_autofit_evaluations_per_parameter: int = _default("ml_autofit_evaluations_per_parameter")
    restart_every: int = _default("restart_every")
    autofit_start: str = _default("autofit_start")
    statistic: str | None = _default("statistic")
    refine_statistic: str | None = _default("refine_statistic")
    refine_from: str = _default("refine_from")
    refine_prior: str = _default("refine_prior")
    refine_iterations: int = _default("refine_iterations")
    refine_chi2_tolerance: float = _default("refine_chi2_tolerance")
    refine_broyden: bool = _default("refine_broyden")
    refine_jacobian: str = _default("refine_jacobian")
    refine_starts: int = _default("refine_starts")
    refine_start_spread: float = _default("refine_start_spread")
    refine_screen_iterations: int = _default("refine_screen_iterations")
    seed: int = _default("seed")
    posterior_spectra: int = _default("posterior_spectra")
    posterior_walkers: int = _default("posterior_walkers")
    posterior_steps: int = _default("posterior_steps")
    posterior_burn: int = _default("posterior_burn")
    posterior_thin: int = _default("posterior_thin")
    batch_size: int = _default("batch_size")
    device: str = _default("device")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FitSettings:
        f = dict(config.get("fitting", {}))
        unknown = sorted(set(f) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"fitting: unknown key(s) {', '.join(unknown)}")
        s = cls(**f)
        for name in (
            "shards",
            "autofit_evaluations_per_parameter",
            "ml_autofit_evaluations_per_parameter",
            "restart_every",
            "refine_iterations",
            "refine_starts",
            "refine_screen_iterations",
            "batch_size",
        ):
            if getattr(s, name) < 1:
                raise ConfigError(f"fitting.{name}: expected >= 1, got {getattr(s, name)}")
        if s.refine_chi2_tolerance < 0:
            raise ConfigError(
                f"fitting.refine_chi2_tolerance: expected >= 0, got {s.refine_chi2_tolerance}"
            )
        if s.posterior_steps < 2 or s.posterior_thin < 1:
            raise ConfigError(
                f"fitting.posterior_steps/posterior_thin: expected >= 2 / >= 1, got "
                f"{s.posterior_steps} / {s.posterior_thin}"
            )
        if not 0 <= s.posterior_burn < s.posterior_steps:
            raise ConfigError(
                f"fitting.posterior_burn: expected 0 <= burn < posterior_steps "
                f"({s.posterior_steps}), got {s.posterior_burn}"
            )
        if s.posterior_walkers < 0 or s.posterior_walkers % 2:
            raise ConfigError(
                f"fitting.posterior_walkers: expected 0 or an even number, got "
                f"{s.posterior_walkers}"
            )
        for name in ("spectra", "autofit_spectra", "posterior_spectra"):
            if getattr(s, name) < 0:
                raise ConfigError(f"fitting.{name}: expected >= 0, got {getattr(s, name)}")
        if not 0 < s.refine_start_spread <= 1:
            raise ConfigError(
                f"fitting.refine_start_spread: expected a fraction in (0, 1], got "
                f"{s.refine_start_spread}"
            )
        if s.statistic not in (None, *STATISTICS):
            raise ConfigError(
                f"fitting.statistic: expected null or one of {', '.join(STATISTICS)}, got "
                f"{s.statistic!r}"
            )
        if s.refine_statistic not in (None, *STATISTICS):
            raise ConfigError(
                f"fitting.refine_statistic: expected null or one of {', '.join(STATISTICS)}, "
                f"got {s.refine_statistic!r}"
            )
        if s.autofit_start not in ("centre", "mean"):
            raise ConfigError(
                f"fitting.autofit_start: expected centre or mean, got {s.autofit_start!r}"
            )
        if s.refine_from not in REFINE_STARTS:
            raise ConfigError(
                f"fitting.refine_from: expected one of {', '.join(REFINE_STARTS)}, got "
                f"{s.refine_from!r}"
            )
        if s.refine_prior not in REFINE_PRIORS:
            raise ConfigError(
                f"fitting.refine_prior: expected one of {', '.join(REFINE_PRIORS)}, got "
                f"{s.refine_prior!r}"
            )
        if s.refine_jacobian not in ("finite-difference", "forward-mode"):
            raise ConfigError(
                f"fitting.refine_jacobian: expected finite-difference or "
                f"forward-mode, got {s.refine_jacobian!r}"
            )
        return s

    def n_spectra(self, n_test: int, method: str | None = None) -> int:
        """Test spectra fitted (by ``method``: the Autofit may fit fewer)."""
        n = n_test if self.spectra == 0 else min(self.spectra, n_test)
        if method == "autofit" and self.autofit_spectra:
            n = min(n, self.autofit_spectra)
        return n

    def shard_range(self, shard: int, n_test: int, method: str | None = None) -> tuple[int, int]:
        """[start, stop) of the test spectra fitted by ``method`` in ``shard``."""
        n = self.n_spectra(n_test, method)
        if not 0 <= shard < self.shards:
            raise ValueError(f"fit shard {shard} outside 0..{self.shards - 1}")
        return shard * n // self.shards, (shard + 1) * n // self.shards
