"""Several starts per spectrum for a local minimiser: the given start and random
perturbations of it, reproducible per spectrum.

A Levenberg–Marquardt refinement ends in the minimum of the basin it starts in.  Where the
statistic has many basins (interference fringes that a thickness a few per cent off puts
out of phase), refining a few perturbed copies of a network's estimate for a few steps and
going on from the best finds lower minima more often (whether they are closer to the truth
depends on the problem: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np


def perturbed_starts(
    start: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    n_starts: int,
    spread: float,
    seed: int,
    keys: np.ndarray,
) -> np.ndarray:
    """Starts [B, n_starts, D]: index 0 is ``start`` [B, D] itself (clipped into the box),
    the others ``start`` + N(0, (spread·(high − low))²) per parameter, clipped into
    [low, high].

    The perturbations of spectrum b are drawn from ``numpy.random.default_rng((seed,
    keys[b]))``: the same starts for the same spectrum (``keys``: its sample index in the
    dataset) whichever others are fitted with it.

    Raises:
        ValueError: shapes that do not match, ``n_starts`` < 1 or ``spread`` <= 0.
    """
    start = np.asarray(start, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    keys = np.asarray(keys)
    if start.ndim != 2 or low.shape != (start.shape[1],) or high.shape != low.shape:
        raise ValueError(
            f"start, low, high: expected [B, D], [D], [D], got {start.shape}, {low.shape}, "
            f"{high.shape}"
        )
    if keys.shape != (start.shape[0],) or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"keys: expected {start.shape[0]} integers, got {keys.shape} {keys.dtype}")
    if n_starts < 1 or not spread > 0:
        raise ValueError(f"n_starts >= 1 and spread > 0 expected, got {n_starts} and {spread}")
    b, d = start.shape
    out = np.repeat(np.clip(start, low, high)[:, None, :], n_starts, axis=1)
    sigma = spread * (high - low)
    for i in range(b):
        rng = np.random.default_rng((int(seed), int(keys[i])))
        out[i, 1:] += rng.standard_normal((n_starts - 1, d)) * sigma
    return np.clip(out, low, high)
