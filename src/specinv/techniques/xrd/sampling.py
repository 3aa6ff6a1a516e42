"""Random strain depth profiles as Boulle & Debelle (2023, section 2.1.1) generate them.

Three steps, for a damaged layer of thickness t (depths as fractions s = z/t of it, s = 0 at
the surface, s = 1 at the film/substrate interface):

1. an asymmetric Gaussian G(s) = exp(−½ ((s − μ)/σ)²) with σ = σ_L for s < μ and σ_R
   otherwise, normalised to a maximum of 1; σ_R is drawn uniformly in [0, 1/3] and
   μ = 1 − 3 σ_R (so that the strain has fallen to ~1 % of its peak at the interface: μ
   uniform in [0, 1]); the paper draws σ_L "in [0, ∞)" without a law — here σ_L is uniform
   in [0, 1] (from a sharp edge to a profile decreasing over the whole layer);
2. with probability ¼ each: nothing, or a constant c (uniform in [0, 0.8]) added on the
   surface side (s < μ), the interface side (s > μ), or both; then normalised to a
   maximum of 1 again;
3. the shape fitted (non-negative least squares on a fine depth grid) by the cubic B-splines
   of the simulator (their interface functions held at 0, so that the strain vanishes at
   the interface), and every fitted weight multiplied by an independent factor uniform in
   [0.9, 1.1].

The jittered profile is scaled to a peak of 1 again, and the strain profile is e_max times
it (so e_max is its maximum, the quantity whose accuracy the paper reports).  Everything is
a function of uniform numbers in [0, 1) (:data:`N_SHAPE_UNIFORMS` plus one per weight), so
that a profile depends only on its own random numbers (the seam's ``sample(u)``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

#: uniform numbers per profile: σ_R, σ_L, the plateau's side, its height; then one
#: jitter factor per B-spline weight (:func:`random_strain_shapes`)
N_SHAPE_UNIFORMS = 4
#: the plateau's sides, each with probability 1/4
PLATEAU_SIDES = ("none", "surface", "interface", "both")
#: the plateau's height, as a fraction of the peak
PLATEAU_MAX = 0.8
#: relative jitter of the fitted weights
WEIGHT_JITTER = 0.1
#: depth points of the least-squares fit
FIT_POINTS = 400


def asymmetric_gaussian(
    s: np.ndarray, mu: np.ndarray, sigma_left: np.ndarray, sigma_right: np.ndarray
) -> np.ndarray:
    """exp(−½ ((s − μ)/σ)²) with σ = σ_L left of μ and σ_R right of it: [n, len(s)].

    ``s``: depths (fractions of t), [P]; ``mu``, ``sigma_left``, ``sigma_right``: [n].  A
    width of 0 gives a step (1 at μ, 0 beyond it on that side).
    """
    s = np.asarray(s, dtype=np.float64)[None, :]
    mu = np.asarray(mu, dtype=np.float64)[:, None]
    sigma = np.where(s < mu, np.asarray(sigma_left)[:, None], np.asarray(sigma_right)[:, None])
    distance = s - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.exp(-0.5 * (distance / sigma) ** 2)
    return np.where(sigma > 0, out, (distance == 0).astype(np.float64))


def paper_shapes(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Steps 1 and 2: normalised profile shapes [n, len(s)] on depths ``s`` (fractions of
    t) from uniform numbers ``u`` [n, N_SHAPE_UNIFORMS] (σ_R, σ_L, side, height)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != N_SHAPE_UNIFORMS:
        raise ValueError(f"u: expected [n, {N_SHAPE_UNIFORMS}] uniform numbers, got {u.shape}")
    sigma_right = u[:, 0] / 3.0
    mu = 1.0 - 3.0 * sigma_right
    sigma_left = u[:, 1]
    shape = asymmetric_gaussian(s, mu, sigma_left, sigma_right)
    side = np.minimum((u[:, 2] * len(PLATEAU_SIDES)).astype(int), len(PLATEAU_SIDES) - 1)
    height = PLATEAU_MAX * u[:, 3]
    left = np.asarray(s)[None, :] < mu[:, None]
    surface = np.isin(side, (1, 3))[:, None] & left
    interface = np.isin(side, (2, 3))[:, None] & ~left
    shape = shape + height[:, None] * (surface | interface)
    return shape / shape.max(axis=1, keepdims=True)


def fit_weights(shapes: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Non-negative least-squares weights [n, W] of the free B-splines (``design`` [P, W], on
    the depths of ``shapes`` [n, P]) that fit the shapes, the interface functions held at 0.

    Non-negative because the strain is tensile (the paper's profiles are): an unconstrained
    fit of a shape with a sharp edge rings, with weights of either sign up to ~10 times the
    peak, which no smooth tensile profile has."""
    shapes = np.asarray(shapes, dtype=np.float64)
    return (
        np.stack([nnls(design, shape)[0] for shape in shapes])
        if len(shapes)
        else (np.zeros((0, design.shape[1])))
    )


def random_strain_shapes(u: np.ndarray, design: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """B-spline weights [n, W] of random strain shapes (step 3 included), scaled so that the
    fitted profile's peak on ``depths`` is 1 (e_max is then the strain's maximum).

    Args:
        u: uniform numbers [n, N_SHAPE_UNIFORMS + W] (the shape's, then one jitter factor
            per weight).
        design: the free B-splines at ``depths`` [P, W] (interface functions excluded).
        depths: fit depths [P] as fractions of t (0: surface, 1: interface).
    """
    u = np.asarray(u, dtype=np.float64)
    n_weights = design.shape[1]
    if u.ndim != 2 or u.shape[1] != N_SHAPE_UNIFORMS + n_weights:
        raise ValueError(
            f"u: expected [n, {N_SHAPE_UNIFORMS + n_weights}] uniform numbers, got {u.shape}"
        )
    weights = fit_weights(paper_shapes(depths, u[:, :N_SHAPE_UNIFORMS]), design)
    weights = weights * (1.0 + WEIGHT_JITTER * (2.0 * u[:, N_SHAPE_UNIFORMS:] - 1.0))
    peak = (weights @ design.T).max(axis=1, keepdims=True)
    return weights / np.where(peak > 0, peak, 1.0)
