"""Channel spectrum of piecewise-linear yield densities smoothed by node-local Gaussians.

Each scattering channel (isotope in a layer) gives a yield density f(χ) over the detector's
channel coordinate χ that is piecewise linear between depth nodes.  Written with hinges,

    f(χ) = Σ_k  a_k H(χ − χ_k) + b_k (χ − χ_k)₊ ,

where a_k is the jump and b_k the change of slope of f at node k.  Convolving hinge k with a
Gaussian of variance v_k (energy straggling of particles from that depth plus the detector
resolution) and integrating over channels gives the cumulative count

    F(χ) = Σ_k  a_k s_k Ψ₁(u_k) + b_k s_k² Ψ₂(u_k),   u_k = (χ − χ_k)/s_k,

with Ψ₁(u) = uΦ(u) + φ(u) and Ψ₂(u) = ((u² + 1)Φ(u) + uφ(u))/2.  Channel i then holds
F(i+1) − F(i).  Far from χ_k these functions become the unsmoothed polynomials
(χ − χ_k)₊ and ((χ − χ_k)₊² + v_k)/2, so F splits into

* a global part, exact for the piecewise-linear f, computed at all channel edges at once by
  depositing B-spline weights of every hinge and integrating with three cumulative sums;
* local corrections that vanish beyond ``cutoff`` standard deviations, evaluated only in a
  window of edges around each node (using Ψ at −|u|, so there is no cancellation).

The work is O(nodes · window + channels), independent of how many channels a layer spans.
"""

from __future__ import annotations

import math

import torch
from torch.autograd import forward_ad

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
#: Elements per thread of the blocks ([nodes, window] or [spectra, edges]) processed at once
#: on a CPU: the ~10 temporaries of a block (256 KiB each in float64 per thread) stay in
#: cache, and each thread gets one of torch's parallel grains (32 768 elements; a smaller
#: operation runs on one thread).  Per spectrum, 2^15 per thread was 5-13 % faster than
#: 2^17 at one thread and as fast at two (benchmarks/RESULTS.md).  The results do not
#: depend on the block size (every deposit keeps its order).
_CPU_CHUNK_PER_THREAD = 1 << 15
#: On a GPU, larger blocks mean fewer kernel launches.
_GPU_CHUNK = 1 << 17


def _chunk_elements(device: torch.device) -> int:
    """Elements of the blocks processed at once on ``device``."""
    if device.type == "cpu":
        return _CPU_CHUNK_PER_THREAD * max(1, torch.get_num_threads())
    return _GPU_CHUNK


def smoothed_cumulative(
    chi: torch.Tensor,
    jump: torch.Tensor,
    kink: torch.Tensor,
    variance: torch.Tensor,
    sample: torch.Tensor,
    n_samples: int,
    n_edges: int,
    cutoff: float = 5.0,
    compiled: bool | None = None,
) -> torch.Tensor:
    """Cumulative counts F at the integer edges 0 … n_edges−1 of the channel grid.

    Args:
        chi: [N] node positions in channel units (relative to edge 0, ≥ 0).
        jump: [N] jumps a_k of the density (counts per channel).
        kink: [N] slope changes b_k (counts per channel²).
        variance: [N] Gaussian variance of each node (channel²), > 0.
        sample: [N] index of the spectrum each node belongs to.
        n_samples: number of spectra.
        n_edges: number of edges of the grid.
        cutoff: Gaussian tails beyond this many standard deviations are dropped.
        compiled: compute with the compiled kernel of :mod:`.spectrum_kernel` (no
            derivatives; CPU) instead of torch operations.  None: where that is possible,
            i.e. on a CPU when no derivatives of the inputs are tracked.

    Returns:
        [n_samples, n_edges] cumulative counts, float64 whatever the input precision (they
        reach the total counts, and their differences are the channel contents).
    """
    # nodes sorted by spectrum (stable, so each spectrum keeps its node order): the work is
    # then done in cache-sized blocks of spectra, and a spectrum's result does not depend on
    # which other spectra share the batch
    if n_samples > 1:
        order = torch.argsort(sample, stable=True)
        chi, jump, kink, variance, sample = (
            x.index_select(0, order) for x in (chi, jump, kink, variance, sample)
        )
    if compiled is None:
        compiled = chi.device.type == "cpu" and not any(
            _tracked(x) for x in (chi, jump, kink, variance)
        )
    if compiled:
        from .spectrum_kernel import cumulative_counts  # numba compiles it on first use

        arrays = (x.detach().cpu().numpy() for x in (chi, jump, kink, variance, sample))
        counts = cumulative_counts(
            *arrays, n_samples, n_edges, cutoff, threads=torch.get_num_threads()
        )
        return torch.from_numpy(counts).to(chi.device)
    base = chi.detach().floor()
    i = base.long()
    t = chi - base
    sigma = variance.sqrt()
    need = (cutoff * sigma.detach()).ceil() + 1.0  # half-width of each node's window
    sizes = _window_sizes(int(need.max()) if need.numel() else 1)
    # edges 0 … n_edges−1, one extra edge that collects everything beyond the grid, and on
    # both sides a margin that takes any window sticking out of the grid (discarded)
    margin = 2 * sizes[-1]
    width = margin + n_edges + 1 + margin
    out = torch.zeros(n_samples, width, dtype=torch.float64, device=chi.device)
    with torch.profiler.record_function("rbs.spectrum_global"):
        _global_part(
            out[:, margin : margin + n_edges + 1],
            t.double(),
            i,
            jump.double(),
            kink.double(),
            variance.double(),
            sample,
            n_edges,
        )
    with torch.profiler.record_function("rbs.spectrum_local"):
        base = sample * width + margin + i.clamp(-margin // 2, n_edges + margin // 2)
        _local_part(out.view(-1), base, t, jump, kink, variance, sigma, need, sizes)
    return out[:, margin : margin + n_edges]


def _local_part(flat, base, t, jump, kink, variance, sigma, need, sizes):
    """Add the local corrections of all nodes to ``flat`` (the edge grid of all spectra, with
    margins); ``base`` is the flat index of each node's edge i = ⌊χ⌋.

    Each node only touches the edges within its window (``need`` half-width, rounded up to
    one of ``sizes``).  Nodes are sorted (stably) by window size and processed in
    cache-sized blocks, added in place.  Nodes without jump and kink add nothing and are
    skipped, unless derivatives are tracked: their corrections still have derivatives
    with respect to jump and kink (an element of amount 0 has such nodes, and the
    spectrum changes as its amount grows).
    """
    if _tracked(jump) or _tracked(kink):
        active = torch.ones_like(jump, dtype=torch.bool)
    else:
        active = (jump != 0) | (kink != 0)
    bucket = torch.bucketize(need, need.new_tensor(sizes))
    bucket = torch.where(active, bucket, len(sizes))  # inactive nodes: no bucket
    counts = torch.bincount(bucket, minlength=len(sizes) + 1).tolist()
    # per node and half window (below the node: offsets o ≤ 0, sign s = +1; above: o ≥ 1,
    # s = −1), in units of x = |u|/√2 = |o|·inv + s·t·inv: the constants of _add_local
    inv = _SQRT1_2 / sigma
    a_s = jump * sigma
    q = 0.5 * kink * variance
    t_inv = t * inv
    p = a_s * _INV_SQRT_2PI
    s = a_s * -_SQRT1_2
    # [5, N, 2]: each quantity contiguous, node by node (stacked along the first axis, which
    # is fast, then transposed once)
    columns = torch.stack([t_inv, -t_inv, inv, inv, p, p, s, s, q, -q]).view(5, 2, -1)
    columns = columns.transpose(1, 2).contiguous()
    if counts[0] != len(bucket):  # more than one window size: sort by window size
        order = torch.argsort(bucket, stable=True)
        columns, base = columns.index_select(1, order), base.index_select(0, order)
    start = 0
    for size, count in zip(sizes, counts, strict=False):
        if count == 0:
            continue
        offsets = torch.arange(-size + 1, size + 1, device=t.device).view(2, size)
        distance = offsets.abs().to(t.dtype)
        block = max(1, _chunk_elements(flat.device) // offsets.numel())
        for n0 in range(start, start + count, block):
            n1 = min(n0 + block, start + count)
            _add_local(flat, offsets, distance, columns[:, n0:n1], base[n0:n1])
        start += count


def _tracked(x: torch.Tensor) -> bool:
    """Whether derivatives of ``x`` are tracked (autograd, or a forward-mode tangent)."""
    return x.requires_grad or forward_ad.unpack_dual(x).tangent is not None


def _global_part(out, t, i, jump, kink, variance, sample, n_edges):
    """Write into ``out`` [B, n_edges + 1] the cumulative counts of the unsmoothed
    piecewise-linear densities plus the kink·v/2 steps, at all edges.

    The hinges are deposited as B-spline weights of their 1st, 2nd and 3rd differences on the
    edge grid and integrated with three cumulative sums, a block of spectra at a time.
    ``sample`` must be sorted.
    """
    n_samples, width = out.shape
    one_t = 1.0 - t
    half_kink = 0.5 * kink
    weights = torch.stack(
        [
            half_kink * variance,  # step: H(j − χ)
            jump * one_t,
            jump * t,  # (j − χ)₊
            half_kink * one_t * one_t,
            kink * (0.5 + t * one_t),
            half_kink * t * t,
        ]
    )  # (j − χ)₊²/2
    # edge of each weight (clamped into the extra last edge), in the row of its kind
    kind = torch.tensor([0, 1, 1, 2, 2, 2], device=t.device)[:, None] * width
    shift = torch.tensor([1, 1, 2, 1, 2, 3], device=t.device)[:, None]
    index = (i + shift).clamp_(max=n_edges) + kind  # [6, N]
    rows = max(1, _chunk_elements(out.device) // (3 * width))
    bounds = torch.searchsorted(
        sample, torch.arange(0, n_samples + rows, rows, device=t.device)
    ).tolist()
    for c, b0 in enumerate(range(0, n_samples, rows)):
        b1 = min(b0 + rows, n_samples)
        n0, n1 = bounds[c], bounds[c + 1]
        target = index[:, n0:n1].add(sample[n0:n1], alpha=3 * width)
        if b0:
            target = target - b0 * 3 * width
        d = torch.zeros((b1 - b0) * 3 * width, dtype=t.dtype, device=t.device)
        d = d.scatter_add(0, target.reshape(-1), weights[:, n0:n1].reshape(-1)).view(
            b1 - b0, 3, width
        )
        out[b0:b1] = torch.cumsum(d[:, 0] + torch.cumsum(d[:, 1] + torch.cumsum(d[:, 2], 1), 1), 1)


def _window_sizes(largest: int) -> list[int]:
    """Half-widths (edges) of the node windows: 6, 12, 24, 48, … up to ``largest``."""
    size, out = 6, []
    while True:
        out.append(size)
        if size >= largest:
            return out
        size *= 2


def _add_local(flat, offsets, distance, columns, base):
    """Add the local part of F of a block of nodes onto the flat edge grid.

    ``offsets`` [2, size] are the edge offsets o of the window's lower (o ≤ 0) and upper
    (o ≥ 1) halves and ``distance`` their |o|; ``columns`` [5, n, 2] holds per node and half
    ±t·inv, inv = 1/(σ√2), a·σ/√(2π), −a·σ/√2 and q = ±b·v/2 (a the jump, b the kink,
    v = σ², + below the node, − above it), and ``base`` the index in ``flat`` of the node's
    edge i.  With x = |u|/√2 the correction a·σ Ψ₁(−|u|) ± b·v Ψ₂(−|u|) is

        exp(−x²) (a·σ/√(2π) − q x/√π) + erfc(x) (q x² − a·σ x/√2 + q/2),

    evaluated with a handful of fused multiply-adds per window element.
    """
    t_inv, inv, p, s, q = columns.unsqueeze(-1)  # [n, 2, 1] each
    x = torch.addcmul(t_inv, distance, inv)  # [n, 2, size]
    gauss = torch.exp(torch.mul(x, x).neg_())
    poly = torch.addcmul(q * 0.5, torch.addcmul(s, q, x), x)
    local = torch.addcmul(gauss * torch.addcmul(p, q, x, value=-_INV_SQRT_PI), torch.erfc(x), poly)
    index = (base.view(-1, 1, 1) + offsets).view(-1)
    local = local.view(-1)
    flat.index_add_(0, index, local if local.dtype == flat.dtype else local.to(flat.dtype))
