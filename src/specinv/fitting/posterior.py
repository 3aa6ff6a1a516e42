"""Reference posteriors by Markov chain Monte Carlo, for judging a network's uncertainties
against the posterior itself rather than only against the truth.

The sampler is emcee's affine-invariant ensemble sampler (Foreman-Mackey et al. 2013), used
unchanged. A batched simulator is efficient only on large batches, and one spectrum's
walkers are a small batch; so the ensembles of many spectra run in lock step
(:func:`run_ensembles_in_lock_step`): every ensemble runs in its own thread, and each of
emcee's calls of the log-posterior waits at a barrier until every ensemble has made the
same call, when one vectorised evaluation serves them all. Every ensemble makes the same
sequence of calls (its initial state, then two half-ensemble proposals per step of the
stretch move), so the rounds stay aligned; a result is identical to running that ensemble
alone with the same seed.

The posterior is the Poisson likelihood of the counts over the region of interest times the
prior: uniform over the prior box (a draw outside it has probability zero). What the
sampler sees is a callable and arrays; :func:`reference_posterior` builds them from a
technique and its test spectra.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: quantiles stored per parameter: the central 68 % and 95 % intervals and the median
QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)


@dataclass(frozen=True)
class EnsembleRun:
    """What one ensemble left: its kept draws and diagnostics.

    Attributes:
        draws: the kept positions [n_kept, D] (every walker, after burn-in, thinned).
        acceptance: the walkers' mean acceptance fraction.
        autocorr_steps: the integrated autocorrelation time of each parameter [D], in
            steps (emcee's estimate; unreliable when the chain is shorter than ~50 of them).
        log_prob_max: the highest log-posterior the walkers reached.
        stuck_walkers: walkers that did not move after the burn-in (a sign of too short a
            burn-in; their steps are left out of the autocorrelation time, not the draws).
    """

    draws: np.ndarray
    acceptance: float
    autocorr_steps: np.ndarray
    log_prob_max: float
    stuck_walkers: int = 0


class _LockStep:
    """The barrier every ensemble's log-posterior call waits at; the last to arrive
    evaluates all of them at once."""

    def __init__(self, n: int, log_prob: Callable[[np.ndarray], np.ndarray], on_round=None):
        self.log_prob = log_prob
        self.positions: list[np.ndarray | None] = [None] * n
        self.results: list[np.ndarray | None] = [None] * n
        self.on_round = on_round
        self.barrier = threading.Barrier(n, action=self._evaluate)

    def _evaluate(self) -> None:
        shapes = {p.shape for p in self.positions}
        if len(shapes) != 1:
            raise RuntimeError(f"lock-step ensembles out of step: position shapes {shapes}")
        values = np.asarray(self.log_prob(np.stack(self.positions)), dtype=np.float64)
        for i in range(len(self.positions)):
            self.results[i] = values[i]
        if self.on_round is not None:
            self.on_round()

    def function(self, index: int) -> Callable[[np.ndarray], np.ndarray]:
        def log_prob(positions: np.ndarray) -> np.ndarray:
            self.positions[index] = np.asarray(positions, dtype=np.float64)
            self.barrier.wait()
            return self.results[index]

        return log_prob


def run_ensembles_in_lock_step(
    log_prob: Callable[[np.ndarray], np.ndarray],
    initial: np.ndarray,
    steps: int,
    seeds: Sequence[int],
    burn: int = 0,
    thin: int = 1,
    progress: bool = True,
    desc: str = "MCMC",
) -> list[EnsembleRun]:
    """Run one emcee ensemble per problem, all in lock step.

    Args:
        log_prob: maps positions [S, n, D] (n walkers of each of the S problems) to their
            log-posteriors [S, n] (−inf where the posterior is zero).
        initial: the walkers' starting positions [S, W, D] (W ≥ 2·D, even, inside the
            support and not all on a lower-dimensional subspace).
        steps: steps after which the runs stop; the first ``burn`` are discarded and of the
            rest every ``thin``-th is kept.
        seeds: one seed per problem (the ensemble's random numbers depend on it alone).

    Raises:
        ValueError: on inconsistent shapes or settings; whatever a run raises (every other
            run is then stopped rather than left waiting).
    """
    import emcee
    from tqdm import tqdm

    initial = np.asarray(initial, dtype=np.float64)
    if initial.ndim != 3:
        raise ValueError(f"initial: expected [problems, walkers, parameters], got {initial.shape}")
    n_problems, n_walkers, n_params = initial.shape
    if len(seeds) != n_problems:
        raise ValueError(f"seeds: expected {n_problems}, got {len(seeds)}")
    if n_walkers < 2 * n_params or n_walkers % 2:
        raise ValueError(f"walkers: expected an even number >= {2 * n_params}, got {n_walkers}")
    if not 0 <= burn < steps or thin < 1:
        raise ValueError(f"steps {steps}, burn {burn}, thin {thin}: expected 0 <= burn < steps")

    rounds = 1 + 2 * steps  # the initial state, then two half-ensemble proposals per step
    bar = tqdm(total=rounds, desc=desc, unit="round", file=sys.stderr, disable=not progress)
    lock = _LockStep(n_problems, log_prob, on_round=lambda: bar.update(1))
    samplers = []
    for i, seed in enumerate(seeds):
        sampler = emcee.EnsembleSampler(n_walkers, n_params, lock.function(i), vectorize=True)
        sampler.random_state = np.random.RandomState(int(seed) % 2**32).get_state()
        samplers.append(sampler)
    errors: list[BaseException | None] = [None] * n_problems

    def run(i: int) -> None:
        try:
            samplers[i].run_mcmc(initial[i], steps, progress=False)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after every thread ends
            errors[i] = exc
            lock.barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n_problems)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    failures = [e for e in errors if e is not None]
    if failures:
        first = next(
            (e for e in failures if not isinstance(e, threading.BrokenBarrierError)), failures[0]
        )
        raise first

    from emcee.autocorr import integrated_time

    out = []
    for sampler in samplers:
        kept = sampler.get_chain(discard=burn, thin=thin, flat=True)
        chain = sampler.get_chain(discard=burn)  # [steps, W, D]
        moved = (chain != chain[:1]).any(axis=(0, 2))
        tau = (
            integrated_time(chain[:, moved], quiet=True, tol=0)
            if moved.any()
            else np.full(n_params, np.inf)
        )
        out.append(
            EnsembleRun(
                draws=kept,
                acceptance=float(np.mean(sampler.acceptance_fraction)),
                autocorr_steps=np.asarray(tau, dtype=np.float64),
                log_prob_max=float(np.max(sampler.get_log_prob())),
                stuck_walkers=int((~moved).sum()),
            )
        )
    return out


def poisson_log_likelihood(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Σ (k log λ − λ − log k!) over the last axis: the Poisson log-likelihood of counts k
    with expected values λ (a λ of zero where k > 0 makes it −inf)."""
    from scipy.special import gammaln, xlogy

    expected = np.asarray(expected, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore"):
        terms = xlogy(counts, expected) - expected - gammaln(counts + 1.0)
    return terms.sum(axis=-1)


def initial_walkers(
    centre: np.ndarray,
    spread: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    n_walkers: int,
    seed: int | Sequence[int],
) -> np.ndarray:
    """Walkers [n_walkers, D] drawn from a normal distribution around ``centre`` with
    standard deviations ``spread`` (a non-finite or wider one: a quarter of the prior
    range), truncated to the prior box [low, high]."""
    from scipy.stats import truncnorm

    centre = np.clip(np.asarray(centre, dtype=np.float64), low, high)
    width = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, np.inf)
    spread = np.minimum(spread, 0.25 * width)
    a = (low - centre) / spread
    b = (high - centre) / spread
    rng = np.random.default_rng(seed)
    z = truncnorm.rvs(a, b, size=(n_walkers, len(centre)), random_state=rng)
    return centre + spread * z


def posterior_summary(draws: np.ndarray, true: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Mean, standard deviation and :data:`QUANTILES` [D] of draws [n, D]; with ``true``,
    also the rank of the truth among the draws (the fraction of draws below it: uniform
    over spectra when the posterior is right, simulation-based calibration)."""
    out = {
        "mean": draws.mean(axis=0),
        "std": draws.std(axis=0, ddof=1),
        "quantiles": np.quantile(draws, QUANTILES, axis=0),
    }
    if true is not None:
        out["rank"] = (draws < np.asarray(true)[None, :]).mean(axis=0)
    return out


def default_walkers(n_params: int) -> int:
    """The smallest even ensemble emcee's stretch move is well defined for, plus a margin:
    2·D + 2."""
    return 2 * n_params + 2


def effective_draws(n_walkers: int, kept_steps: int, thin: int, autocorr_steps: float) -> float:
    """Roughly independent draws: walkers × kept steps × thin / autocorrelation time."""
    return n_walkers * kept_steps * thin / max(autocorr_steps, 1.0)


def reference_posterior(
    cfg,
    test,
    transform,
    start,
    settings,
    progress: bool = True,
):
    """The reference posterior of the first ``settings.posterior_spectra`` spectra of the
    fit result ``start`` (the refinement's: its ``estimate`` centres the walkers, spread by
    the Cramér–Rao bounds there) as an ``xarray.Dataset`` over ``sample`` and ``param``:
    ``estimate`` (the posterior mean: the best estimate within the prior in the mean-square
    sense), ``std``, ``quantiles`` (:data:`QUANTILES`), ``rank`` (of the truth), ``draws``
    (the kept draws, float32), ``true``, ``start``, and per spectrum ``acceptance``,
    ``autocorr_steps`` (the largest over the parameters) and ``n_simulations``."""
    import emcee
    import torch
    import xarray as xr

    from ..evaluation.metrics import roi_mask
    from .runner import _technique_on, cramer_rao_bounds, parameter_bounds

    n = min(settings.posterior_spectra, start.sizes["sample"])
    if n < 1:
        raise ValueError("reference_posterior: fitting.posterior_spectra is 0")
    samples = start["sample"].values[:n]
    spectra = test.sel(sample=samples)
    technique = _technique_on(cfg, settings.device)
    low, high = parameter_bounds(technique)
    counts = spectra["counts"].values.astype(np.float64)
    roi = roi_mask(
        counts.shape[1],
        transform.settings.first_channel,
        transform.settings.merge,
        transform.kept_bins,
    )
    observed = counts[:, roi]
    centre = np.clip(start["estimate"].values[:n].astype(np.float64), low, high)
    n_params = centre.shape[1]
    n_walkers = settings.posterior_walkers or default_walkers(n_params)
    t0 = time.perf_counter()
    spread, _ = cramer_rao_bounds(
        technique, centre, roi, settings.batch_size, progress, desc="Cramer-Rao bounds (start)"
    )
    initial = np.stack(
        [
            initial_walkers(c, sd, low, high, n_walkers, seed=[settings.seed, int(s), 0])
            for c, sd, s in zip(centre, spread, samples, strict=True)
        ]
    )
    seeds = [
        int(np.random.SeedSequence([settings.seed, int(s), 1]).generate_state(1)[0])
        for s in samples
    ]
    simulated = [0]

    def log_prob(positions: np.ndarray) -> np.ndarray:
        s_count, per, _ = positions.shape
        flat = positions.reshape(-1, n_params)
        owner = np.repeat(np.arange(s_count), per)
        out = np.full(len(flat), -np.inf)
        inside = np.flatnonzero(((flat >= low) & (flat <= high)).all(axis=1))
        for i in range(0, len(inside), settings.batch_size):
            rows = inside[i : i + settings.batch_size]
            params = torch.as_tensor(flat[rows], dtype=technique.dtype, device=technique.device)
            with torch.no_grad():
                expected = technique.simulate(params).to(torch.float64).cpu().numpy()
            out[rows] = poisson_log_likelihood(expected[:, roi], observed[owner[rows]])
            simulated[0] += len(rows)
        return out.reshape(s_count, per)

    runs = run_ensembles_in_lock_step(
        log_prob,
        initial,
        settings.posterior_steps,
        seeds,
        burn=settings.posterior_burn,
        thin=settings.posterior_thin,
        progress=progress,
        desc=f"MCMC of {n} spectra",
    )
    true = spectra["params"].values.astype(np.float64)
    summaries = [posterior_summary(r.draws, t) for r, t in zip(runs, true, strict=True)]
    unit = spectra["params"].attrs.get("units", "")
    dims = ("sample", "param")
    return xr.Dataset(
        {
            "estimate": (
                dims,
                np.stack([m["mean"] for m in summaries]),
                {"long_name": "posterior mean", "units": unit},
            ),
            "std": (
                dims,
                np.stack([m["std"] for m in summaries]),
                {"long_name": "posterior standard deviation", "units": unit},
            ),
            "quantiles": (
                ("sample", "quantile", "param"),
                np.stack([m["quantiles"] for m in summaries]),
                {"long_name": "posterior quantiles", "units": unit},
            ),
            "rank": (
                dims,
                np.stack([m["rank"] for m in summaries]),
                {"long_name": "share of the posterior's draws below the true value"},
            ),
            "draws": (
                ("sample", "draw", "param"),
                np.stack([r.draws for r in runs]).astype(np.float32),
                {"long_name": "kept draws of the posterior", "units": unit},
            ),
            "true": (dims, true, {"long_name": "true parameters", "units": unit}),
            "start": (dims, centre, {"long_name": "centre of the initial walkers", "units": unit}),
            "acceptance": ("sample", [r.acceptance for r in runs]),
            "autocorr_steps": (
                "sample",
                [float(np.max(r.autocorr_steps)) for r in runs],
                {"long_name": "largest integrated autocorrelation time over the parameters"},
            ),
            "stuck_walkers": (
                "sample",
                [r.stuck_walkers for r in runs],
                {"long_name": "walkers that did not move after the burn-in"},
            ),
            "n_simulations": ("sample", np.full(n, simulated[0] / n)),
        },
        coords={"sample": samples, "param": spectra["param"].values, "quantile": list(QUANTILES)},
        attrs={
            "method": "reference_posterior",
            "sampler": f"emcee {emcee.__version__} (affine-invariant stretch move)",
            "walkers": n_walkers,
            "steps": settings.posterior_steps,
            "burn": settings.posterior_burn,
            "thin": settings.posterior_thin,
            "dof": int(roi.sum()),
            "wall_seconds": time.perf_counter() - t0,
            "data_hash": test.attrs.get("data_hash", ""),
        },
    )


__all__ = [
    "QUANTILES",
    "EnsembleRun",
    "default_walkers",
    "effective_draws",
    "initial_walkers",
    "poisson_log_likelihood",
    "posterior_summary",
    "reference_posterior",
    "run_ensembles_in_lock_step",
]
