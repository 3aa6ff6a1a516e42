"""The channel assembly of piecewise-linear densities smoothed by Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import erf, erfcx

from specinv.physics.rbs import spectrum_kernel
from specinv.physics.rbs.spectrum import smoothed_cumulative

#: both implementations: torch operations (the derivative path) and the compiled kernel
IMPLEMENTATIONS = pytest.mark.parametrize("compiled", [False, True], ids=["torch", "kernel"])


def psi1(u):
    phi = np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi)
    cdf = 0.5 * (1 + erf(u / np.sqrt(2)))
    return u * cdf + phi


def psi2(u):
    phi = np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi)
    cdf = 0.5 * (1 + erf(u / np.sqrt(2)))
    return 0.5 * ((u * u + 1) * cdf + u * phi)


def hinges(nodes: np.ndarray, at_low_end: np.ndarray, at_high_end: np.ndarray, slopes: np.ndarray):
    """Jumps and kinks of a piecewise-linear density on decreasing nodes (zero outside);
    piece k lies between nodes k+1 (low) and k (high)."""
    pad = np.zeros(1)
    lower = np.concatenate([at_high_end, pad])  # value of the piece below each node
    upper = np.concatenate([pad, at_low_end])  # value of the piece above each node
    jump = upper - lower
    kink = np.concatenate([pad, slopes]) - np.concatenate([slopes, pad])
    return jump, kink


def random_density(rng, n_nodes=12):
    nodes = np.sort(rng.uniform(40.0, 160.0, n_nodes))[::-1].copy()  # decreasing, like depth
    width = nodes[:-1] - nodes[1:]
    mean = rng.uniform(50, 500, n_nodes - 1)
    slope = rng.uniform(-20, 20, n_nodes - 1)
    return nodes, mean - 0.5 * slope * width, mean + 0.5 * slope * width, slope


@IMPLEMENTATIONS
def test_matches_the_hinge_formula_with_node_local_widths(compiled):
    rng = np.random.default_rng(3)
    nodes, above, below, slope = random_density(rng)
    jump, kink = hinges(nodes, above, below, slope)
    variance = rng.uniform(1.0, 30.0, len(nodes))
    cum = smoothed_cumulative(
        *(torch.as_tensor(x) for x in (nodes, jump, kink, variance)),
        torch.zeros(len(nodes), dtype=torch.long),
        1,
        221,
        cutoff=12.0,
        compiled=compiled,
    )[0].numpy()
    edges = np.arange(221.0)
    s = np.sqrt(variance)
    u = (edges[:, None] - nodes) / s
    direct = (jump * s * psi1(u) + kink * variance * psi2(u)).sum(1)
    # F is defined up to a constant: compare channel contents
    assert np.allclose(np.diff(cum), np.diff(direct), rtol=1e-10, atol=1e-8)


@IMPLEMENTATIONS
def test_equals_numerical_convolution_and_channel_integration(compiled):
    rng = np.random.default_rng(4)
    nodes, low_end, high_end, slope = random_density(rng)
    jump, kink = hinges(nodes, low_end, high_end, slope)
    sigma = 3.0
    counts = np.diff(
        smoothed_cumulative(
            *(torch.as_tensor(x) for x in (nodes, jump, kink, np.full(len(nodes), sigma**2))),
            torch.zeros(len(nodes), dtype=torch.long),
            1,
            221,
            compiled=compiled,
        )[0].numpy()
    )
    # brute force: the density on a fine grid, convolved, integrated over unit channels
    x = np.arange(0.0, 220.0, 0.005) + 0.0025
    f = np.zeros_like(x)
    for k in range(len(nodes) - 1):
        hi, lo = nodes[k], nodes[k + 1]
        inside = (x >= lo) & (x < hi)
        f[inside] = low_end[k] + slope[k] * (x[inside] - lo)
    kernel_x = np.arange(-8 * sigma, 8 * sigma + 1e-9, 0.005)
    kernel = np.exp(-0.5 * (kernel_x / sigma) ** 2)
    smooth = np.convolve(f, kernel / kernel.sum(), mode="same")
    brute = smooth.reshape(220, -1).sum(1) * 0.005
    assert np.abs(counts - brute).max() < 1e-3 * counts.max()
    assert abs(counts.sum() - brute.sum()) < 1e-4 * brute.sum()


@IMPLEMENTATIONS
def test_spectra_in_one_call_are_independent(compiled):
    rng = np.random.default_rng(5)
    parts, singles = [], []
    for b in range(3):
        nodes, above, below, slope = random_density(rng)
        jump, kink = hinges(nodes, above, below, slope)
        var = rng.uniform(1.0, 30.0, len(nodes))
        data = [torch.as_tensor(x) for x in (nodes, jump, kink, var)]
        parts.append((data, b))
        singles.append(
            smoothed_cumulative(
                *data, torch.zeros(len(nodes), dtype=torch.long), 1, 221, compiled=compiled
            )[0]
        )
    cat = [torch.cat([p[0][i] for p in parts]) for i in range(4)]
    sample = torch.cat([torch.full((len(p[0][0]),), p[1]) for p in parts])
    together = smoothed_cumulative(*cat, sample, 3, 221, compiled=compiled)
    for b in range(3):
        assert torch.equal(together[b], singles[b])


def test_the_result_does_not_depend_on_the_block_size(monkeypatch):
    """Blocks of a few nodes or spectra at a time (the block size follows the thread count)
    give the same bits as one block for everything."""
    from specinv.physics.rbs import spectrum

    rng = np.random.default_rng(7)
    parts = []
    for b in range(40):
        nodes, above, below, slope = random_density(rng)
        jump, kink = hinges(nodes, above, below, slope)
        var = rng.uniform(1.0, 300.0, len(nodes))  # windows of several sizes
        parts.append([torch.as_tensor(x) for x in (nodes, jump, kink, var)] + [b])
    cat = [torch.cat([p[i] for p in parts]) for i in range(4)]
    sample = torch.cat([torch.full((len(p[0]),), p[4]) for p in parts])
    one_block = smoothed_cumulative(*cat, sample, len(parts), 221, compiled=False)
    # blocks of one spectrum's edges, or a few nodes' windows
    monkeypatch.setattr(spectrum, "_chunk_elements", lambda device: 256)
    assert torch.equal(
        smoothed_cumulative(*cat, sample, len(parts), 221, compiled=False), one_block
    )


def many_spectra(rng, n_spectra=60, n_nodes=20):
    """Nodes of ``n_spectra`` random densities (windows of several sizes, nodes near and
    beyond both ends of the grid, nodes without jump and kink), shuffled across spectra."""
    parts = []
    for b in range(n_spectra):
        nodes, above, below, slope = random_density(rng, n_nodes)
        nodes = nodes + rng.choice([-38.0, 0.0, 65.0])  # some reach past edge 0 or 221
        jump, kink = hinges(nodes, above, below, slope)
        jump[rng.random(len(jump)) < 0.1] = 0.0
        kink[jump == 0.0] = 0.0
        var = rng.uniform(0.05, 400.0, len(nodes))
        parts.append((nodes, jump, kink, var, np.full(len(nodes), b)))
    cat = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    order = rng.permutation(len(cat[0]))
    return [torch.as_tensor(x[order]) for x in cat]


def test_the_kernel_agrees_with_the_torch_operations():
    """The compiled kernel (no derivatives) and the torch path (derivatives) give the same
    cumulative counts to rounding, for every window size, and nodes off the grid."""
    chi, jump, kink, var, sample = many_spectra(np.random.default_rng(11))
    chi = chi.clamp_min(0.0)  # the node positions are >= 0 (relative to edge 0)
    ref = smoothed_cumulative(chi, jump, kink, var, sample, 60, 221, compiled=False)
    out = smoothed_cumulative(chi, jump, kink, var, sample, 60, 221, compiled=True)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    scale = ref.abs().amax(1, keepdim=True)
    assert ((out - ref).abs() / scale).max() < 1e-12
    channels = torch.diff(ref, dim=1)
    assert ((torch.diff(out, dim=1) - channels).abs() / scale).max() < 1e-12
    # the default takes the kernel without derivatives and the torch path with them
    assert torch.equal(smoothed_cumulative(chi, jump, kink, var, sample, 60, 221), out)
    tracked = smoothed_cumulative(chi, jump.requires_grad_(), kink, var, sample, 60, 221)
    assert torch.equal(tracked.detach(), ref)


def test_the_kernel_does_not_depend_on_threads_or_batch():
    chi, jump, kink, var, sample = (
        x.numpy() for x in many_spectra(np.random.default_rng(12), n_spectra=8)
    )
    chi = np.maximum(chi, 0.0)
    order = np.argsort(sample, kind="stable")
    data = [x[order] for x in (chi, jump, kink, var, sample)]
    one = spectrum_kernel.cumulative_counts(*data, 8, 221, threads=1)
    two = spectrum_kernel.cumulative_counts(*data, 8, 221, threads=2)
    assert np.array_equal(one, two)
    alone = data[4] == 3
    single = spectrum_kernel.cumulative_counts(
        *(x[alone] for x in data[:4]), np.zeros(alone.sum(), dtype=np.int64), 1, 221
    )
    assert np.array_equal(single[0], one[3])
    with pytest.raises(ValueError, match="sorted by spectrum"):
        spectrum_kernel.cumulative_counts(*(x[::-1] for x in data), 8, 221)


def test_the_tabulated_erfcx_is_accurate():
    x = np.linspace(0.0, spectrum_kernel.X_MAX - 1e-9, 100_001)
    coefficients = spectrum_kernel.erfcx_coefficients()
    y = x / spectrum_kernel.STEP
    k = y.astype(int)
    tau = (y - k)[:, None] ** np.arange(6)
    approx = (coefficients[k] * tau).sum(1)
    assert np.abs(approx / erfcx(x) - 1.0).max() < 1e-13
