"""Strain and Debye–Waller (DW) depth profiles on the slices of the damaged layer.

Geometry: the damaged layer of thickness t (Å) lies on the perfect substrate and is cut into
N slices of equal thickness t/N.  **Slice arrays are ordered from the surface**: index 0 is
the slice at the surface, index N−1 the slice on the substrate; depth z is measured from the
surface (z = 0 at the surface, z = t at the film/substrate interface), as in Boulle & Debelle
(2023).

B-splines (RaDMaX's "smooth" model, Souilah, Boulle & Debelle, J. Appl. Cryst. 49 (2016) 311):
uniform cubic B-splines in the reduced height above the interface u = n_w (t − z)/t ∈ [0, n_w]
with integer knots from −3 to n_w + 3, i.e. n_w + 3 basis functions.  The three functions
that reach the interface (u < 3 at their top) carry fixed weights — 0 for strain, 1 for DW —
so the strain and its first two derivatives vanish at the interface and the DW factor tends
to 1 there.  The n_w free weights follow, **ordered from the interface to the surface**
(RaDMaX's coefficient files, so its weights load unchanged): free weight k (1-based) is
centred at u = k + 1, the last one one knot above the surface, so the value at the surface
is (w_{n−2} + 4 w_{n−1} + w_n)/6.

Profiles (per sample b, slice j):

* strain   e_j = e_max Σ_k w_k B_k(u_j)                  (Boulle & Debelle 2023, eq. 3)
* DW, coupled to the strain (eq. 4):   DW_j = exp(−α (e_j/e_max)²),  with α chosen so that
  min_j DW_j = DW_min (the paper samples DW_min): α = −ln DW_min / max_j (e_j/e_max)²
* DW, independent B-spline (RaDMaX):   DW_j = Σ_{fixed} 1·B(u_j) + Σ_k v_k B_k(u_j)

Where in a slice the profile is read (``sampling``):

* ``"midpoint"``: at the middle of each slice, u_j = n_w (N − j − ½)/N;
* ``"surface_edge"``: at the slice's surface side, u_j = n_w (N − j)/N (RaDMaX's choice: its
  depth grid is k t/N, k = 0..N, and slice k takes the value at k t/N; k = 0 is unused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.interpolate import BSpline

#: spline degree (cubic) and the number of interface basis functions with fixed weights.
DEGREE = 3
N_FIXED = 3

Sampling = Literal["midpoint", "surface_edge"]
SAMPLINGS: tuple[str, ...] = ("midpoint", "surface_edge")


class ProfileError(ValueError):
    """A bad profile setting (the message names key, expected and actual)."""


def slice_heights_fraction(n_slices: int, sampling: Sampling = "midpoint") -> np.ndarray:
    """Height above the interface, as a fraction of t, where each slice's profile is read;
    surface first ([n_slices], from ~1 down to ~0)."""
    if not (isinstance(n_slices, int) and n_slices >= 1):
        raise ProfileError(f"n_slices: expected an integer >= 1, got {n_slices!r}")
    if sampling not in SAMPLINGS:
        raise ProfileError(f"sampling: expected one of {SAMPLINGS}, got {sampling!r}")
    top = np.arange(n_slices, 0, -1, dtype=np.float64)  # N, N-1, ..., 1
    offset = 0.5 if sampling == "midpoint" else 0.0
    return (top - offset) / n_slices


def slice_depths_fraction(n_slices: int, sampling: Sampling = "midpoint") -> np.ndarray:
    """Depth below the surface, as a fraction of t, of each slice's sampling point (surface
    first); multiply by t (Å) for depths in Å."""
    return 1.0 - slice_heights_fraction(n_slices, sampling)


def bspline_design_matrix(n_weights: int, heights_fraction: np.ndarray) -> np.ndarray:
    """Values of the n_weights + 3 uniform cubic B-splines at the given heights above the
    interface (fractions of t in [0, 1]): [len(heights), n_weights + 3]; columns 0..2 are the
    interface functions with fixed weights, columns 3.. the free weights (interface first)."""
    if not (isinstance(n_weights, int) and n_weights >= DEGREE):
        raise ProfileError(f"n_weights: expected an integer >= {DEGREE}, got {n_weights!r}")
    h = np.asarray(heights_fraction, dtype=np.float64)
    if h.ndim != 1 or not np.all((h >= 0) & (h <= 1)):
        raise ProfileError(
            f"heights_fraction: expected a 1-D array in [0, 1], got shape {h.shape}, "
            f"range [{h.min():.3g}, {h.max():.3g}]"
        )
    knots = np.arange(-DEGREE, n_weights + DEGREE + 1, dtype=np.float64)
    design = BSpline.design_matrix(h * n_weights, knots, DEGREE)
    return design.toarray()


@dataclass(frozen=True)
class SliceBasis:
    """B-spline basis sampled on the slices (surface first).

    ``free``: [n_slices, n_weights], the free basis functions (interface first);
    ``interface``: [n_slices], the sum of the three interface functions (the profile of
    fixed weights equal to 1)."""

    free: torch.Tensor
    interface: torch.Tensor

    @property
    def n_weights(self) -> int:
        return self.free.shape[1]


def slice_basis(
    n_weights: int,
    n_slices: int,
    sampling: Sampling = "midpoint",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> SliceBasis:
    """The basis of :func:`bspline_design_matrix` on the slices, as torch tensors."""
    design = bspline_design_matrix(n_weights, slice_heights_fraction(n_slices, sampling))
    return SliceBasis(
        free=torch.as_tensor(design[:, N_FIXED:], dtype=dtype, device=device),
        interface=torch.as_tensor(design[:, :N_FIXED].sum(axis=1), dtype=dtype, device=device),
    )


def strain_shape(basis: SliceBasis, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k B_k on the slices (strain over e_max): [B, n_weights] -> [B, n_slices]."""
    _check_weights(basis, weights, "strain weights")
    return weights @ basis.free.T


def strain_profile(
    basis: SliceBasis, weights: torch.Tensor, strain_max: torch.Tensor
) -> torch.Tensor:
    """Strain e_j = e_max Σ_k w_k B_k(u_j) (dimensionless, not %): [B, n_slices].

    ``strain_max``: [B] (e_max, 0.01 for RaDMaX's weights, which are in %)."""
    return strain_max[:, None] * strain_shape(basis, weights)


def dw_from_strain(shape: torch.Tensor, dw_min: torch.Tensor) -> torch.Tensor:
    """DW_j = exp(−α shape_j²) with α = −ln(DW_min) / max_j shape_j² (Boulle & Debelle 2023,
    eq. 4, shape = e/e_max); the DW factor reaches ``dw_min`` ([B], in (0, 1]) where the strain
    is largest in magnitude, and is 1 everywhere for a profile of zero strain."""
    squared = shape * shape
    peak = squared.amax(dim=1, keepdim=True).clamp_min(torch.finfo(shape.dtype).tiny)
    return torch.exp(torch.log(dw_min)[:, None] * (squared / peak))


def dw_spline(basis: SliceBasis, weights: torch.Tensor) -> torch.Tensor:
    """RaDMaX's independent DW B-spline: fixed weights 1 at the interface plus the free
    weights v_k: [B, n_weights] -> [B, n_slices]."""
    _check_weights(basis, weights, "DW weights")
    return basis.interface + weights @ basis.free.T


def _check_weights(basis: SliceBasis, weights: torch.Tensor, what: str) -> None:
    if weights.ndim != 2 or weights.shape[1] != basis.n_weights:
        raise ProfileError(
            f"{what}: expected shape [B, {basis.n_weights}], got {list(weights.shape)}"
        )
