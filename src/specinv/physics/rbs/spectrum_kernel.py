"""Compiled kernel of :func:`.spectrum.smoothed_cumulative` for spectra without derivatives.

The torch implementation in :mod:`.spectrum` evaluates the node-local Gaussian corrections
as ~15 broadcast tensor operations over ``[nodes, window]`` blocks; every operation reads and
writes memory, and one spectrum costs a few hundred small operations.  This module computes
the same cumulative counts in one pass per spectrum (numba, compiled on first use), for
simulations whose derivatives are not tracked (data generation, Monte Carlo, the model
evaluations of derivative-free fits).  The torch path stays the one that derivatives flow
through; ``tests/test_rbs_spectrum.py`` checks that the two agree.

Per window element the torch path evaluates ``exp(−x²)`` and ``erfc(x)`` with library
calls.  Here, along a node's window x grows in equal steps ``1/(σ√2)``, so

* x itself is stepped by additions, and ``exp(−x²)`` follows from the previous element by
  two multiplications (the ratio of neighbours is itself a geometric sequence): relative
  errors ~k·1e-16 after k steps;
* ``erfc(x) = exp(−x²)·erfcx(x)``, with the scaled complementary error function
  ``erfcx`` (smooth, between 1 and 0.047 on the range used) interpolated by quintic
  Hermite polynomials from values and first and second derivatives tabulated with
  :func:`scipy.special.erfcx` when the module is imported (relative error < 1e-13).

A window element then costs ~25 floating-point operations (fused multiply-adds where
possible) and 7 loads, ~3 ns on the 2-core Xeon VM, against ~10 ns in the torch code.

Window elements with x ≥ :data:`X_MAX` are left out: there erfc(x) and exp(−x²) are below
1e-62 of the node's amplitude, far below the cut-off that already drops the tails beyond
``cutoff`` standard deviations.  Everything else (windows, global part, edges beyond the
grid) follows :mod:`.spectrum`, so the two agree to rounding (~1e-13 of the total counts).

The spectra of a batch are independent: they are computed in parallel over numba's
threads (as many as torch uses; :mod:`specinv.compiled`), and each spectrum's result does
not depend on the batch or the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import erfcx

from ...compiled import jit, parallel

#: Interpolation step of erfcx and the end of its table: exp(−X_MAX²) = 3e-63.
STEP = 1.0 / 64.0
X_MAX = 12.0
_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def erfcx_coefficients(step: float = STEP, x_max: float = X_MAX) -> np.ndarray:
    """Monomial coefficients [n, 6] of the quintic Hermite interpolant of erfcx on each
    interval [k·step, (k+1)·step] of [0, x_max], in τ = x/step − k."""
    x = np.arange(0.0, x_max + 2.0 * step, step)
    f = erfcx(x)
    d1 = 2.0 * x * f - 2.0 * _INV_SQRT_PI  # erfcx' = 2x·erfcx − 2/√π
    d2 = 2.0 * f + 2.0 * x * d1  # erfcx'' = 2·erfcx + 2x·erfcx'
    f0, f1 = f[:-1], f[1:]
    g0, g1 = step * d1[:-1], step * d1[1:]
    h0, h1 = step * step * d2[:-1], step * step * d2[1:]
    # p(τ) = c0 + c1 τ + … + c5 τ⁵ with p, p', p'' matching at τ = 0 and τ = 1
    c3 = 10.0 * (f1 - f0) - 6.0 * g0 - 4.0 * g1 - 1.5 * h0 + 0.5 * h1
    c4 = -15.0 * (f1 - f0) + 8.0 * g0 + 7.0 * g1 + 1.5 * h0 - h1
    c5 = 6.0 * (f1 - f0) - 3.0 * (g0 + g1) - 0.5 * (h0 - h1)
    return np.ascontiguousarray(np.stack([f0, g0, 0.5 * h0, c3, c4, c5], 1))


#: the table of the kernels (for other compiled kernels too), flat: 6 per piece
ERFCX_COEFFICIENTS = erfcx_coefficients().reshape(-1)


@jit(inline="always")
def _erfcx(x, coefficients):
    """erfcx(x) for 0 ≤ x < X_MAX from the tabulated quintic pieces."""
    y = x * (1.0 / STEP)
    k = np.uintp(y)  # unsigned: no check for negative indices
    tau = y - k
    c = coefficients  # flat: 6 per piece
    i = 6 * k
    return c[i] + tau * (
        c[i + 1] + tau * (c[i + 2] + tau * (c[i + 3] + tau * (c[i + 4] + tau * c[i + 5])))
    )


@jit(inline="always")
def _add_half_window(row, first, step, x0, inv, p, s, q, size, coefficients):
    """Add a·σ Ψ₁(−|u|) ± b·v Ψ₂(−|u|) (see :func:`.spectrum._add_local`) at the edges
    ``first + step·m``, m = 0 … size−1, whose x = |u|/√2 are ``x0 + m·inv`` (only those on
    the grid, and with x < X_MAX)."""
    n_edges = row.shape[0]
    lo = 0
    hi = int(min(float(size), math.ceil((X_MAX - x0) / inv)))
    if step > 0:
        lo = max(lo, -first)
        hi = min(hi, n_edges - first)
    else:
        lo = max(lo, first - n_edges + 1)
        hi = min(hi, first + 1)
    if hi <= lo:
        return
    x = x0 + lo * inv
    gauss = math.exp(-x * x)
    ratio = math.exp(-(2.0 * x + inv) * inv)
    shrink = math.exp(-2.0 * inv * inv)
    edge = first + step * lo
    for _ in range(lo, hi):
        poly = (q * x + s) * x + 0.5 * q
        row[np.uintp(edge)] += gauss * (p - q * _INV_SQRT_PI * x + _erfcx(x, coefficients) * poly)
        edge += step
        x += inv
        gauss *= ratio
        ratio *= shrink


@jit()
def cumulative_row(row, chi, jump, kink, variance, first, stop, cutoff, coefficients):
    """Fill ``row`` [n_edges] with the cumulative counts of the nodes ``first`` …
    ``stop−1`` of the node arrays (one spectrum; compiled, for other kernels too)."""
    n_edges = row.shape[0]
    # global part: B-spline weights of the hinges' 1st, 2nd and 3rd differences (deposits
    # beyond the grid cannot change it), integrated by three running sums
    diff = np.zeros((3, n_edges))
    for k in range(first, stop):
        c = chi[k]
        base = math.floor(c)
        t = c - base
        i = int(base)
        one_t = 1.0 - t
        a = jump[k]
        half_kink = 0.5 * kink[k]
        for kind, shift, weight in (
            (0, 1, half_kink * variance[k]),
            (1, 1, a * one_t),
            (1, 2, a * t),
            (2, 1, half_kink * one_t * one_t),
            (2, 2, kink[k] * (0.5 + t * one_t)),
            (2, 3, half_kink * t * t),
        ):
            edge = max(i + shift, 0)
            if edge < n_edges:
                diff[kind, edge] += weight
    second = 0.0
    slope = 0.0
    total = 0.0
    for j in range(n_edges):
        second += diff[2, j]
        slope += diff[1, j] + second
        total += diff[0, j] + slope
        row[j] = total
    # local corrections, in windows of 6·2^n edges on both sides of each node
    for k in range(first, stop):
        a = jump[k]
        kk = kink[k]
        if a == 0.0 and kk == 0.0:
            continue
        v = variance[k]
        sigma = math.sqrt(v)
        need = math.ceil(cutoff * sigma) + 1.0
        size = 6
        while size < need:
            size *= 2
        c = chi[k]
        base = math.floor(c)
        t = c - base
        i = int(base)
        inv = _SQRT1_2 / sigma
        a_s = a * sigma
        p = a_s * _INV_SQRT_2PI
        s = -a_s * _SQRT1_2
        q = 0.5 * kk * v
        # edges i, i−1, …: x = (χ − edge)/(σ√2); edges i+1, i+2, …: (edge − χ)/(σ√2)
        _add_half_window(row, i, -1, t * inv, inv, p, s, q, size, coefficients)
        _add_half_window(row, i + 1, 1, (1.0 - t) * inv, inv, p, s, -q, size, coefficients)


# One compiled function per mode, not one Python function compiled twice: numba's disk cache
# keys a function's compilations by their argument types only, so a serial and a parallel
# compilation of the same function would load each other's code.
@jit()
def _cumulative_serial(chi, jump, kink, variance, starts, cutoff, coefficients, out):
    """Fill ``out`` [B, n_edges] with the cumulative counts of the nodes of every spectrum b
    (nodes ``starts[b]`` … ``starts[b+1]−1``), one spectrum after the other."""
    for b in range(out.shape[0]):
        cumulative_row(
            out[b], chi, jump, kink, variance, starts[b], starts[b + 1], cutoff, coefficients
        )


@jit(parallel=True)
def _cumulative_parallel(chi, jump, kink, variance, starts, cutoff, coefficients, out):
    """:func:`_cumulative_serial`, the spectra in parallel."""
    for b in numba.prange(out.shape[0]):
        cumulative_row(
            out[b], chi, jump, kink, variance, starts[b], starts[b + 1], cutoff, coefficients
        )


def cumulative_counts(
    chi: np.ndarray,
    jump: np.ndarray,
    kink: np.ndarray,
    variance: np.ndarray,
    sample: np.ndarray,
    n_samples: int,
    n_edges: int,
    cutoff: float = 5.0,
    threads: int = 1,
) -> np.ndarray:
    """Cumulative counts [n_samples, n_edges] (float64) at the integer edges of the
    channel grid: the arguments and result of :func:`.spectrum.smoothed_cumulative`, as
    NumPy arrays (``sample`` sorted), computed on ``threads`` threads."""
    chi, jump, kink, variance = (
        np.ascontiguousarray(x, dtype=np.float64) for x in (chi, jump, kink, variance)
    )
    sample = np.asarray(sample, dtype=np.int64)
    if sample.size and np.any(sample[1:] < sample[:-1]):
        raise ValueError("sample: expected the nodes sorted by spectrum")
    starts = np.searchsorted(sample, np.arange(n_samples + 1))
    out = np.zeros((n_samples, n_edges))
    if n_samples > 1 and threads > 1:
        with parallel(threads):
            _cumulative_parallel(chi, jump, kink, variance, starts, cutoff, ERFCX_COEFFICIENTS, out)
    else:
        _cumulative_serial(chi, jump, kink, variance, starts, cutoff, ERFCX_COEFFICIENTS, out)
    return out
