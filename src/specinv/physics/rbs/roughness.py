"""Layer roughness: a Gamma distribution of a layer's thickness, as in SIMNRA and JaBS.

A rough layer of mean areal density T and standard deviation σ has thicknesses t that follow
the Gamma distribution of shape α = (T/σ)² and scale σ²/T (mean T, never negative); the
layers below it keep their own thicknesses and move up or down with its lower surface.  The
spectrum is the average of the spectra of the thicknesses, weighted with the distribution.

JaBS (``roughness.c``) and SIMNRA average n spectra at thicknesses on an even grid over a
few σ with the probabilities of the grid's cells.  Here the average is a Gauss quadrature
of the distribution instead: n thicknesses t_j and weights w_j with Σ w_j f(t_j) exact for
every polynomial f of degree < 2n (Golub–Welsch: the eigenvalues of the Jacobi matrix of
the generalised Laguerre polynomials, and the squared first components of its
eigenvectors).  The mean thickness and its variance are then reproduced exactly by any
n >= 2, the distribution's long tail for σ close to T included, and the nodes and weights
are smooth functions of T and σ, so that fits get derivatives with respect to both.
"""

from __future__ import annotations

import torch


def gamma_quadrature(relative_sigma: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss quadrature of the Gamma distribution of mean 1 and standard deviation s.

    The distribution has shape α = 1/s².  The Jacobi matrix of its orthogonal (generalised
    Laguerre) polynomials, diagonal 2i + α and off-diagonal sqrt(i (i + α − 1)), is used
    shifted by α and divided by √α: diagonal 2 i s, off-diagonal sqrt(i ((i − 1) s² + 1)),
    whose eigenvalues λ give the nodes 1 + s λ.  That form keeps full precision for small s
    (nearly smooth layers) and tends to the Gauss–Hermite rule of a normal distribution as
    s → 0 (s = 0: every node at 1).

    Args:
        relative_sigma: s [B] (>= 0); differentiable.
        n: number of nodes (>= 1).

    Returns:
        nodes [B, n] (thickness / mean thickness, increasing, > 0 for s > 0) and weights
        [B, n] (> 0, sum 1), with Σ_j w_j x_j^k equal to the distribution's moments for k < 2n.
    """
    if n < 1:
        raise ValueError(f"n: expected at least 1 quadrature node, got {n}")
    s = relative_sigma
    i = torch.arange(n, dtype=s.dtype, device=s.device)
    diagonal = 2.0 * i * s[:, None]
    off = torch.sqrt(i[1:] * ((i[1:] - 1.0) * (s * s)[:, None] + 1.0))
    jacobi = torch.diag_embed(diagonal) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    eigenvalues, vectors = torch.linalg.eigh(jacobi)
    weights = vectors[:, 0, :] ** 2
    return 1.0 + s[:, None] * eigenvalues, weights / weights.sum(-1, keepdim=True)


def rough_samples(
    areal_densities: torch.Tensor,
    layer_columns: list[list[int]],
    sigma_tfu: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smooth samples whose weighted spectra average to those of rough samples.

    Args:
        areal_densities: [B, D] amounts (1e15 at/cm²) of every element of every layer.
        layer_columns: for each rough layer, the columns of ``areal_densities`` that hold its
            elements (its thickness T is their sum; its composition is kept).
        sigma_tfu: [B, R] standard deviation σ of each rough layer's thickness (>= 0;
            σ = 0: smooth).
        n: quadrature nodes per rough layer.

    Returns:
        samples [B·n^R, D] (sample b's n^R thickness combinations, consecutive) and their
        weights [B, n^R] (sum 1 per sample).
    """
    batch = areal_densities.shape[0]
    if sigma_tfu.shape != (batch, len(layer_columns)):
        raise ValueError(
            f"sigma_tfu: expected shape ({batch}, {len(layer_columns)}), got "
            f"{tuple(sigma_tfu.shape)}"
        )
    samples = areal_densities[:, None, :]  # [B, M, D], M = combinations so far
    weights = areal_densities.new_ones(batch, 1)
    for r, columns in enumerate(layer_columns):
        index = torch.as_tensor(columns, device=areal_densities.device)
        thickness = areal_densities.index_select(1, index).sum(1)
        # an empty layer stays empty (relative roughness 0)
        empty = thickness <= 0
        relative = sigma_tfu[:, r] / torch.where(empty, 1.0, thickness)
        nodes, w = gamma_quadrature(torch.where(empty, 0.0, relative), n)  # [B, n]
        # each combination so far × each node of this layer
        scale = torch.ones(batch, n, areal_densities.shape[1], dtype=nodes.dtype)
        scale = scale.to(areal_densities.device).index_copy(
            2, index, nodes[..., None].expand(-1, -1, len(columns))
        )
        samples = (samples[:, :, None, :] * scale[:, None, :, :]).flatten(1, 2)
        weights = (weights[:, :, None] * w[:, None, :]).flatten(1, 2)
    return samples.reshape(-1, areal_densities.shape[1]), weights
