"""Compiled forward model of :class:`.simulator.RBSSimulator`, for spectra without derivatives.

The simulator's torch code handles a batch with ~40 tensor operations per stage; a single
spectrum costs ~2 500 of them (~2 ms of Python and dispatch for a 2-layer sample), and a
batch reads and writes every intermediate array.  This module computes the same model one
spectrum at a time in compiled loops (numba; spectra in parallel over threads), with the
same formulas in the same order (the methods of the torch code named in each comment;
where the order of two roundings differs, it says so).  It serves every simulation whose
derivatives are not tracked (data generation, Monte Carlo, derivative-free fits, model
evaluation); derivatives, and every GPU run, go through the torch code.
``tests/test_rbs_forward_kernel.py`` checks that the two agree to rounding (~1e-12 of a
spectrum's largest channel) on the samples of datasets A, B and C, with empty layers,
absent elements, per-spectrum calibrations and partial spectra; the JaBS reference tests
run through this path.

Per spectrum: composition → range/stopping/straggling tables of every layer
(:class:`.tables.LayerTables`) → beam and cut-off energies at the layer tops → for every
scattering channel (deepest layer first) the useful depth range (bracketed Newton) and its
depth nodes → each node's particle followed out through the layers above → yields
(Simpson) → hinges of the piecewise-linear density → the smoothed cumulative counts
(:func:`.spectrum_kernel.cumulative_row`) → channel contents.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ...compiled import jit, parallel
from .spectrum_kernel import ERFCX_COEFFICIENTS, cumulative_row

#: numbers of the screening corrections in the kernel
SCREENING_CODES = {"none": 0, "andersen": 1, "lecuyer": 2}
_R, _S, _T = 0, 1, 2

_jit = jit(inline="always")


# ---------------------------------------------------------------- tables (tables.py)
@_jit
def _hermite(value, slope, layer, q, t, j):
    """Quantity ``j`` (R, S, T) of table ``layer`` on interval ``q`` at t ∈ [0, 1]."""
    y0 = value[layer, q, j]
    m0 = slope[layer, q, j]
    m1 = slope[layer, q + 1, j]
    dy = value[layer, q + 1, j] - y0
    c2 = 3.0 * dy - 2.0 * m0 - m1
    c3 = m0 + m1 - 2.0 * dy
    return y0 + t * (m0 + t * (c2 + t * c3))


@_jit
def _lookup(tables, layer, u):
    """(R, S, T) of table ``layer`` at ln E = u, clamped to the grid (LayerTables.lookup);
    ``tables`` = (value, slope, ω², u0, h, hint, −u0/h, 1/h) as :func:`_spectrum` makes
    them."""
    value, slope, pos0, inv_h = tables[0], tables[1], tables[6], tables[7]
    size = value.shape[1]
    pos = min(max(pos0 + inv_h * u, 0.0), size - 1.0)
    i = min(math.floor(pos), size - 2.0)
    t = pos - i
    q = int(i)
    return (
        _hermite(value, slope, layer, q, t, _R),
        _hermite(value, slope, layer, q, t, _S),
        _hermite(value, slope, layer, q, t, _T),
    )


@_jit
def _interval(value, layer, r, hint):
    """The interval q of range r in table ``layer``: R[q] <= r < R[q+1], the last interval
    at the top (what LayerTables.invert's search finds).  The search starts at the interval
    found last in this layer (``hint[layer]``, updated): a particle's next look-up is
    usually in the same or a neighbouring interval."""
    size = value.shape[1]
    q = hint[layer]
    # a bracket lo < hi with R[lo] <= r < R[hi] (hi = size − 1 counts as above everything),
    # in steps doubling away from q, then bisection
    if value[layer, q, _R] <= r:
        lo, step, hi = q, 1, q + 1
        while hi <= size - 2 and value[layer, hi, _R] <= r:
            lo = hi
            step *= 2
            hi = lo + step
        hi = min(hi, size - 1)
    else:
        hi, step, lo = q, 1, q - 1
        while lo > 0 and value[layer, lo, _R] > r:
            hi = lo
            step *= 2
            lo = hi - step
        lo = max(lo, 0)  # R[0] = 0 <= r
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if value[layer, mid, _R] <= r:
            lo = mid
        else:
            hi = mid
    hint[layer] = lo
    return lo


@_jit
def _invert(tables, layer, rng, with_values):
    """ln E where R of table ``layer`` equals ``rng`` (clamped to the table), and there
    (R, S, T) after one Newton step (LayerTables.invert); without ``with_values`` the
    cubic inverse alone and zeros."""
    value, slope, u0, h, hint = tables[0], tables[1], tables[3], tables[4], tables[5]
    size = value.shape[1]
    r = min(max(rng, 0.0), value[layer, size - 1, _R])
    q = _interval(value, layer, r, hint)
    r0 = value[layer, q, _R]
    dr = value[layer, q + 1, _R] - r0
    inv_dr = 1.0 / dr
    a = dr / slope[layer, q, _R]
    b = dr / slope[layer, q + 1, _R]
    tau = -r0 * inv_dr + r * inv_dr
    t = tau + tau * (tau - 1.0) * ((1.0 - a) + (a + b - 2.0) * tau)
    u = (u0 + h * q) + h * t
    if not with_values:
        return u, r, 0.0, 0.0
    tc = min(max(t, 0.0), 1.0)
    r_at = _hermite(value, slope, layer, q, tc, _R)
    s_at = _hermite(value, slope, layer, q, tc, _S)
    t_at = _hermite(value, slope, layer, q, tc, _T)
    d = r - r_at
    return u + d * (s_at / math.exp(u)), r, s_at, t_at + d / (s_at * s_at)


@_jit
def _cross(tables, layer, variance, path, r_in, s_in, t_in):
    """Move a particle with (R, S, T) = (r_in, s_in, t_in) and energy variance
    ``variance`` along ``path`` TFU of table ``layer`` (LayerTables.cross): ln E, variance,
    S_out/S_in and whether it got through."""
    rng = r_in - path
    u_out, _, s_out, t_out = _invert(tables, layer, rng, True)
    omega2 = tables[2]
    ratio = s_out / s_in
    var_out = ratio * ratio * variance + omega2[layer] * s_out * s_out * (t_in - t_out)
    return u_out, var_out, ratio, rng >= 0.0


@_jit
def _build_tables(fraction, species_stop, species_slope, species_omega2, energy, h):
    """Tables of every layer for the atom fractions [L, S] (LayerTables.build, with the
    mixed stopping and slope of RBSSimulator._simulate)."""
    n_layers, n_species = fraction.shape
    size = energy.shape[0]
    value = np.empty((n_layers, size, 3))
    slope = np.empty((n_layers, size, 3))
    omega2 = np.zeros(n_layers)
    half_h = 0.5 * h
    h2_12 = h * h / 12.0
    for layer in range(n_layers):
        for s in range(n_species):
            omega2[layer] += fraction[layer, s] * species_omega2[s]
        r_sum = 0.0
        t_sum = 0.0
        gr_prev = gt_prev = dgr_prev = dgt_prev = 0.0
        for g in range(size):
            stop = 0.0
            d_stop = 0.0
            for s in range(n_species):
                stop += fraction[layer, s] * species_stop[s, g]
                d_stop += fraction[layer, s] * species_slope[s, g]
            inv_stop = 1.0 / stop  # (the torch code divides three times)
            g_r = energy[g] * inv_stop  # dR/du
            g_t = g_r * inv_stop * inv_stop  # dT/du
            log_slope = d_stop * inv_stop
            dg_r = g_r * (1.0 - log_slope)
            dg_t = g_t * (1.0 - 3.0 * log_slope)
            if g > 0:  # trapezoid with the Euler-Maclaurin end correction
                r_sum += half_h * (g_r + gr_prev) - h2_12 * (dg_r - dgr_prev)
                t_sum += half_h * (g_t + gt_prev) - h2_12 * (dg_t - dgt_prev)
            gr_prev, gt_prev, dgr_prev, dgt_prev = g_r, g_t, dg_r, dg_t
            value[layer, g, _R] = r_sum
            value[layer, g, _S] = stop
            value[layer, g, _T] = t_sum
            slope[layer, g, _R] = g_r * h
            slope[layer, g, _S] = d_stop * h
            slope[layer, g, _T] = g_t * h
    return value, slope, omega2


# ---------------------------------------------------------------- physics pieces
@_jit
def _cross_section(screening, rutherford, screen_a, screen_b, energy):
    """σ (mb/sr) at lab energy ``energy`` (RBSSimulator._cross_section)."""
    if screening == 1:
        ratio = (energy + 0.5 * screen_a) / (screen_b + energy * (energy + screen_a))
        return rutherford * ratio * ratio
    sigma = rutherford / (energy * energy)
    if screening == 2:
        sigma = sigma * (1.0 - screen_a / energy)
    return sigma


@_jit
def _node_coordinate(energy, knee, ln_knee):
    """node_coordinate of the simulator module."""
    e = max(energy, 1e-30)
    return math.log(e) if e < knee else ln_knee + (e - knee) / knee


@_jit
def _node_coordinate_inverse(xi, knee, ln_knee):
    """node_coordinate_inverse of the simulator module."""
    return math.exp(min(xi, ln_knee)) if xi < ln_knee else knee * (1.0 + xi - ln_knee)


# ---------------------------------------------------------------- one spectrum
@jit()
def _spectrum(
    params,
    out,
    offset,
    gain,
    var_det,
    factor,
    edge0,
    species_stop,
    species_slope,
    species_omega2,
    energy,
    u0,
    h,
    amount_columns,
    default_fraction,
    r_layer,
    r_column,
    r_abundance,
    r_constants,
    geometry,
    numerics,
    screening,
    quadratic,
    coefficients,
):
    """Fill ``out`` [C] with the spectrum of areal densities ``params`` [D]; ``geometry`` =
    [ln E_beam, ln E_cut, E_cut, cos α/cos β, 1/cos α, 1/cos β, beam variance, Q·Ω·mb·TFU],
    ``numerics`` = [piece width keV, relative piece width, max nodes per layer, Gaussian
    cut-off σ] (arrays: numba's parallel loops take no tuples)."""
    n_layers, n_species = default_fraction.shape
    ln_beam, ln_cut, cut, c_ratio = geometry[0], geometry[1], geometry[2], geometry[3]
    inv_cos_in, inv_cos_out = geometry[4], geometry[5]
    var_beam, yield_scale = geometry[6], geometry[7]
    piece_width, piece_rel = numerics[0], numerics[1]
    max_nodes, gauss_cutoff = numerics[2], numerics[3]

    # composition (RBSSimulator._layer_composition)
    flat = np.zeros(n_layers * n_species)
    for d in range(params.shape[0]):
        flat[amount_columns[d]] += params[d]
    amounts = flat.reshape(n_layers, n_species)
    thickness = np.zeros(n_layers)
    fraction = np.empty((n_layers, n_species))
    for layer in range(n_layers):
        for s in range(n_species):
            thickness[layer] += amounts[layer, s]
        for s in range(n_species):
            if thickness[layer] <= 0.0:
                fraction[layer, s] = default_fraction[layer, s]
            else:
                fraction[layer, s] = amounts[layer, s] / thickness[layer]
    value, slope, omega2 = _build_tables(
        fraction, species_stop, species_slope, species_omega2, energy, h
    )
    hint = np.full(n_layers, value.shape[1] // 2, dtype=np.int64)  # see _interval
    tables = (value, slope, omega2, u0, h, hint, -u0 / h, 1.0 / h)

    # beam and cut-off energies at the layer tops (RBSSimulator._layer_tops)
    u_top = np.empty(n_layers + 1)
    v_top = np.empty(n_layers + 1)
    u_need = np.empty(n_layers)
    beam, back, var = ln_beam, ln_cut, var_beam
    u_top[0] = beam
    v_top[0] = var
    for layer in range(n_layers):
        r_in, s_in, t_in = _lookup(tables, layer, beam)
        r_back = _lookup(tables, layer, back)[0]
        u_need[layer] = back
        beam, _, s_out, t_out = _invert(tables, layer, r_in + thickness[layer] * -inv_cos_in, True)
        back = _invert(tables, layer, r_back + thickness[layer] * inv_cos_out, True)[0]
        ratio = s_out / s_in
        var = ratio * ratio * var + omega2[layer] * s_out * s_out * (t_in - t_out)
        u_top[layer + 1] = beam
        v_top[layer + 1] = var

    # per run (scattering channel): useful depth range and nodes (RBSSimulator._useful_range,
    # _place_nodes)
    n_runs = r_layer.shape[0]
    knee = piece_width / piece_rel
    ln_knee = math.log(knee)
    run_first = np.empty(n_runs + 1, dtype=np.int64)
    run_ends = np.empty((n_runs, 8))  # top, 1/drop, xi_top, dxi, e_hi, de, pieces, falls
    run_top = np.empty((n_runs, 3))
    run_scale = np.empty(n_runs)  # Q·Ω·c: counts per mb/sr per TFU of the isotope
    run_first[0] = 0
    for j in range(n_runs):
        layer = r_layer[j]
        run_scale[j] = (
            fraction[layer, r_column[j] - layer * n_species] * r_abundance[j] * yield_scale
        )
        if run_scale[j] == 0.0:  # an absent element: nodes without counts, left out
            run_first[j + 1] = run_first[j]
            continue
        lnk = r_constants[j, 0]
        u_hi = u_top[layer]
        u_lo = u_top[layer + 1]
        need = min(u_need[layer], u_hi)
        r_a0 = _lookup(tables, layer, need)[0]
        r_a1 = _lookup(tables, layer, u_lo + lnk)[0]
        r_a2, s_a2, _ = _lookup(tables, layer, u_hi + lnk)
        r_top, s_top, t_top = _lookup(tables, layer, u_hi)
        r_b1 = _lookup(tables, layer, u_lo)[0]
        target = r_a0 + c_ratio * r_top
        phi_lo = r_a1 + c_ratio * r_b1
        f_lo = phi_lo - target
        f_hi = (r_a2 + c_ratio * r_top) - target
        df_hi = math.exp(u_hi + lnk) / s_a2 * 1.0 + math.exp(u_hi) / s_top * c_ratio
        none = f_hi <= 0.0
        full = f_lo >= 0.0
        lo, hi = u_lo, u_hi
        x = hi - f_hi / df_hi
        rise = f_hi - f_lo
        secant = hi - f_hi * (hi - lo) / (rise if rise > 0.0 else 1.0)
        if not (x >= lo and x <= hi):
            x = secant
        if not math.isfinite(x):
            x = 0.5 * (lo + hi)
        x = min(max(x, lo), hi)
        for _ in range(3):
            r0, s0, _ = _lookup(tables, layer, x + lnk)
            r1, s1, _ = _lookup(tables, layer, x)
            f = (r0 * 1.0 + r1 * c_ratio) - target
            df = math.exp(x + lnk) / s0 * 1.0 + math.exp(x) / s1 * c_ratio
            if f < 0.0:
                lo = x
            else:
                hi = x
            step = x - f / df
            x = step if (step >= lo and step <= hi) else 0.5 * (lo + hi)
        u_bot = u_hi if none else (u_lo if full else x)
        if none:
            u_x_bot = u_hi + lnk
        elif full:
            u_x_bot = _invert(tables, layer, phi_lo + -c_ratio * r_top, False)[0]
        else:
            u_x_bot = need
        # nodes: equally spaced in the node coordinate of the predicted detected energy
        loss_above = max(math.exp(u_need[layer]) - cut, 0.0)
        top = max(math.exp(u_hi + lnk) - loss_above, cut)
        bottom = max(math.exp(u_x_bot) - loss_above, cut)
        xi_top = _node_coordinate(top, knee, ln_knee) * (1.0 / piece_rel)
        xi_bot = _node_coordinate(bottom, knee, ln_knee) * (1.0 / piece_rel)
        pieces = min(max(math.ceil(xi_top - xi_bot), 1.0), max_nodes - 1.0)
        drop = top - bottom
        e_hi = math.exp(u_hi)
        run_ends[j, 0] = top
        run_ends[j, 1] = 1.0 / drop if drop > 0.0 else 1.0
        run_ends[j, 2] = xi_top
        run_ends[j, 3] = xi_bot - xi_top
        run_ends[j, 4] = e_hi
        run_ends[j, 5] = math.exp(u_bot) - e_hi
        run_ends[j, 6] = pieces
        run_ends[j, 7] = 1.0 if drop > 0.0 else 0.0
        run_top[j, 0] = r_top
        run_top[j, 1] = s_top
        run_top[j, 2] = t_top
        run_first[j + 1] = run_first[j] + int(pieces) + 1

    n_nodes = run_first[n_runs]
    e_in = np.empty(n_nodes)
    u_det = np.empty(n_nodes)
    variance = np.empty(n_nodes)
    density = np.empty(n_nodes)
    g_in = np.empty(n_nodes)
    inside = np.empty(n_nodes, dtype=np.bool_)
    counts = np.zeros(n_nodes)  # of the piece between node n and n + 1 (same run)
    for j in range(n_runs):
        if run_first[j + 1] == run_first[j]:
            continue
        layer = r_layer[j]
        lnk, k2, kvar = r_constants[j, 0], r_constants[j, 1], r_constants[j, 2]
        k, rutherford = r_constants[j, 3], r_constants[j, 4]
        screen_a, screen_b = r_constants[j, 5], r_constants[j, 6]
        scale = run_scale[j]
        top, inv_drop, xi_top, dxi = run_ends[j, 0], run_ends[j, 1], run_ends[j, 2], run_ends[j, 3]
        e_hi, de, pieces, falls = run_ends[j, 4], run_ends[j, 5], run_ends[j, 6], run_ends[j, 7]
        r_top, s_top, t_top = run_top[j, 0], run_top[j, 1], run_top[j, 2]
        v_rel = v_top[layer] / (s_top * s_top)
        inv_pieces = 1.0 / pieces
        for n in range(run_first[j], run_first[j + 1]):
            frac = (n - run_first[j]) * inv_pieces
            e_det = _node_coordinate_inverse((xi_top + frac * dxi) * piece_rel, knee, ln_knee)
            if falls > 0.0:
                frac = (top - e_det) * inv_drop
            e = e_hi + min(max(frac, 0.0), 1.0) * de  # (the torch code: exp(log(e)))
            u_in = math.log(e)
            e_in[n] = e
            # beam energy variance at the node, scattering, way out (RBSSimulator._follow)
            r_here, s_beam, t_here = _lookup(tables, layer, u_in)
            r_scat, s_start, t_scat = _lookup(tables, layer, u_in + lnk)
            v_in = s_beam * s_beam * (v_rel + omega2[layer] * (t_top - t_here))
            depth_out = (r_top - r_here) * c_ratio
            u, v, through, ok = _cross(tables, layer, k2 * v_in, depth_out, r_scat, s_start, t_scat)
            for m in range(layer - 1, -1, -1):
                r_m, s_m, t_m = _lookup(tables, m, u)
                u, v, ratio, ok_m = _cross(tables, m, v, thickness[m] * inv_cos_out, r_m, s_m, t_m)
                through = through * ratio
                ok = ok and ok_m
            spread = e * through
            u_det[n] = u
            variance[n] = v + kvar * spread * spread
            inside[n] = ok
            # yield density and the counts of the piece above (Simpson in beam energy)
            sigma_in = _cross_section(screening, rutherford, screen_a, screen_b, e)
            dedx = through * (s_start * c_ratio + k * s_beam)
            density[n] = scale * sigma_in / dedx if ok else 0.0
            g_in[n] = sigma_in / s_beam
            if n > run_first[j]:
                e_mid = 0.5 * (e + e_in[n - 1])
                s_mid = _lookup(tables, layer, math.log(e_mid))[1]
                g_mid = _cross_section(screening, rutherford, screen_a, screen_b, e_mid) / s_mid
                if inside[n - 1] and ok:
                    counts[n - 1] = (
                        (scale * (1.0 / 6.0))
                        * (e_in[n - 1] - e)
                        * ((g_in[n - 1] + g_in[n]) + 4.0 * g_mid)
                    )

    # hinges of the piecewise-linear density in channel space (RBSSimulator._assemble)
    chi = np.empty(n_nodes)
    dens_ch = np.empty(n_nodes)
    var_ch = np.empty(n_nodes)
    for n in range(n_nodes):
        de = math.exp(u_det[n]) - offset
        if quadratic == 0.0:
            chi[n] = de / gain
            local_gain = gain
        else:
            chi[n] = 2.0 * de / (gain + math.sqrt(max(gain * gain + 4.0 * quadratic * de, 0.0)))
            local_gain = gain + 2.0 * quadratic * chi[n]
        dens_ch[n] = density[n] * local_gain
        var_ch[n] = (variance[n] + var_det) / (local_gain * local_gain)
    jump = np.zeros(n_nodes)
    kink = np.zeros(n_nodes)
    for j in range(n_runs):
        for n in range(run_first[j], run_first[j + 1] - 1):  # the piece between n and n+1
            width = chi[n] - chi[n + 1]
            if width > 0.0:
                inv_w = 1.0 / width
                mean = counts[n] * inv_w
                piece_slope = (dens_ch[n] - dens_ch[n + 1]) * inv_w
                half = 0.5 * piece_slope * width
                jump[n] -= mean + half  # the density just below node n
                jump[n + 1] += mean - half  # just above node n + 1
                kink[n] -= piece_slope
                kink[n + 1] += piece_slope
    for n in range(n_nodes):
        chi[n] -= edge0
    n_edges = out.shape[0] + 1 - edge0
    cumulative = np.empty(n_edges)  # every edge is written
    cumulative_row(cumulative, chi, jump, kink, var_ch, 0, n_nodes, gauss_cutoff, coefficients)
    for c in range(out.shape[0]):  # channels entirely below the cut-off are empty
        upper = c + 1.0
        above = offset + upper * (gain + quadratic * upper) > cut
        counts_c = cumulative[c + 1 - edge0] - cumulative[c - edge0]
        out[c] = max(counts_c, 0.0) * factor if above else 0.0


# One compiled function per mode (see spectrum_kernel._cumulative_serial: numba's disk cache
# would otherwise hand one mode the other's code).
@jit()
def _spectra_serial(params, out, offset, gain, var_det, factor, edge0, *constants):
    """Every spectrum of the batch (the arguments of :func:`_spectrum`, per spectrum), one
    after the other."""
    for b in range(params.shape[0]):
        _spectrum(
            params[b], out[b], offset[b], gain[b], var_det[b], factor[b], edge0[b], *constants
        )


@jit(parallel=True)
def _spectra_parallel(params, out, offset, gain, var_det, factor, edge0, *constants):
    """:func:`_spectra_serial`, the spectra in parallel."""
    for b in numba.prange(params.shape[0]):
        _spectrum(
            params[b], out[b], offset[b], gain[b], var_det[b], factor[b], edge0[b], *constants
        )


def simulate_spectra(
    per_spectrum: tuple, constants: tuple, channels: int, threads: int = 1
) -> np.ndarray:
    """Spectra [B, channels] for ``per_spectrum`` = (params [B, D], offset, gain, detector
    variance, fluence factor and first edge of the channel grid [B]) and the simulator's
    ``constants`` (:meth:`.simulator.RBSSimulator._kernel_constants`)."""
    params = per_spectrum[0]
    out = np.empty((params.shape[0], channels))  # every channel is written
    if params.shape[0] > 1 and threads > 1:
        with parallel(threads):
            _spectra_parallel(*per_spectrum[:1], out, *per_spectrum[1:], *constants)
    else:
        _spectra_serial(*per_spectrum[:1], out, *per_spectrum[1:], *constants)
    return out


__all__ = ["ERFCX_COEFFICIENTS", "SCREENING_CODES", "simulate_spectra"]
