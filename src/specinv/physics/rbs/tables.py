"""Per-sample energy-loss tables of every layer, and fast batched look-ups in them.

For each sample b and layer l the stopping S_l(E) (keV/TFU, Bragg's rule) is known on a
grid uniform in u = ln E.  From it we build, on the same grid,

* the range function  R_l(E) = ∫ dE / S_l(E)   (TFU of path needed to slow down to the
  bottom of the grid), so that crossing a path p changes E into R_l⁻¹(R_l(E) − p);
* the straggling integral  T_l(E) = ∫ dE / S_l(E)³, so that an energy spread with variance
  v at E_in becomes (S(E_out)/S(E_in))² v + ω_l² S(E_out)² (T(E_in) − T(E_out)) after the
  crossing: the exact solution of dv/dp = 2 v S'(E) + ω² with Bohr's ω² per TFU of path,
  i.e. non-statistical broadening plus straggling accumulated along the path.

Values and u-derivatives are stored at the grid nodes and interpolated with cubic Hermite
polynomials, so every look-up is C¹ in its arguments (smooth gradients) and accurate to
O(h⁴).  The integrals use the trapezoid rule with the Euler–Maclaurin end correction,
which is exact for the Hermite interpolant of the integrand.

All look-ups take a ``layer`` index tensor that broadcasts against the energies, so points
of different layers are handled in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# quantities of the packed table (each stored as value and d/du)
R, S, T = 0, 1, 2
_NQ = 3

# Hermite basis as a matrix acting on (1, t, t², t³): columns h00, h10, h01, h11
_HERMITE = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (-3.0, -2.0, 3.0, -1.0),
            (2.0, 1.0, -2.0, 1.0))


def _du(y: torch.Tensor, h: float) -> torch.Tensor:
    """d y / du along the last axis (central differences, second-order one-sided at the ends)."""
    inner = (y[..., 2:] - y[..., :-2]) / (2.0 * h)
    first = (-3.0 * y[..., :1] + 4.0 * y[..., 1:2] - y[..., 2:3]) / (2.0 * h)
    last = (3.0 * y[..., -1:] - 4.0 * y[..., -2:-1] + y[..., -3:-2]) / (2.0 * h)
    return torch.cat([first, inner, last], dim=-1)


def _cumulative(g: torch.Tensor, dg: torch.Tensor, h: float) -> torch.Tensor:
    """∫ g du from the first node, trapezoid + Euler–Maclaurin correction, along the last axis."""
    steps = 0.5 * h * (g[..., 1:] + g[..., :-1]) - (h * h / 12.0) * (dg[..., 1:] - dg[..., :-1])
    zero = torch.zeros_like(g[..., :1])
    return torch.cat([zero, torch.cumsum(steps, dim=-1)], dim=-1)


@dataclass
class LayerTables:
    """Range, stopping and straggling tables of L layers for a batch of B samples.

    Attributes:
        u0, h: first node and spacing of the ln(E/keV) grid; ``size`` nodes per layer.
        pairs: [B, L·size, 12]: (R, S, T) at node q, their u-derivatives at q, the same at
            q+1 (4 × 3).
        sorted_range: [B, L·size] R + per-layer offsets, increasing (for inverse look-ups).
        offsets: [B, L] the per-layer offsets.
        range_top: [B, L] R at the top node of each layer.
        omega2: [B, L] straggling variance per TFU of path (keV²/TFU).
    """

    u0: float
    h: float
    size: int
    pairs: torch.Tensor
    sorted_range: torch.Tensor
    offsets: torch.Tensor
    range_top: torch.Tensor
    omega2: torch.Tensor
    hermite: torch.Tensor

    @classmethod
    def build(cls, stopping: torch.Tensor, omega2: torch.Tensor, u0: float, h: float):
        """Tables from the stopping [B, L, G] (keV/TFU) on the grid E_i = exp(u0 + i h)."""
        batch, layers, size = stopping.shape
        energy = torch.exp(u0 + h * torch.arange(size, dtype=stopping.dtype,
                                                 device=stopping.device))
        g_r = energy / stopping  # dR/du
        g_t = g_r / (stopping * stopping)  # dT/du
        rng = _cumulative(g_r, _du(g_r, h), h)
        strag = _cumulative(g_t, _du(g_t, h), h)
        values = torch.stack([rng, stopping, strag], dim=-1)             # [B, L, G, 3]
        slopes = torch.stack([g_r, _du(stopping, h), g_t], dim=-1)
        nxt = lambda x: torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)  # noqa: E731
        pairs = torch.stack([values, slopes, nxt(values), nxt(slopes)], dim=-2)
        pairs = pairs.reshape(batch, layers * size, 4 * _NQ)
        range_top = rng[..., -1]
        offsets = torch.cumsum(range_top + 1.0, dim=1) - (range_top + 1.0)
        sorted_range = (rng + offsets[..., None]).reshape(batch, layers * size).contiguous()
        # Hermite basis matrix with the derivative columns scaled by the grid step
        hermite = torch.tensor(_HERMITE, dtype=stopping.dtype, device=stopping.device)
        hermite = hermite * hermite.new_tensor([1.0, h, 1.0, h])
        return cls(u0=u0, h=h, size=size, pairs=pairs, sorted_range=sorted_range,
                   offsets=offsets, range_top=range_top, omega2=omega2, hermite=hermite)

    # ------------------------------------------------------------------ helpers
    def _rows(self, flat_index: torch.Tensor) -> torch.Tensor:
        """Packed rows [..., 4 (value q, d/du q, value q+1, d/du q+1), 3 (R, S, T)]."""
        shape = flat_index.shape
        idx = flat_index.reshape(shape[0], -1, 1).expand(-1, -1, 4 * _NQ)
        return torch.gather(self.pairs, 1, idx).view(*shape, 4, _NQ)

    def _interpolate(self, rows: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Hermite interpolation of (R, S, T) at t ∈ [0, 1] between the two nodes of ``rows``."""
        w = (torch.linalg.vander(t, N=4) @ self.hermite)[..., None]  # h00, h·h10, h01, h·h11
        return (w[..., 0, :] * rows[..., 0, :] + w[..., 1, :] * rows[..., 1, :]
                + w[..., 2, :] * rows[..., 2, :] + w[..., 3, :] * rows[..., 3, :])

    def _index(self, layer: torch.Tensor, u: torch.Tensor):
        pos = ((u - self.u0) / self.h).clamp(0.0, self.size - 1.0)
        i = pos.detach().floor().clamp_(max=self.size - 2)
        return layer * self.size + i.long(), pos - i

    # ------------------------------------------------------------------ look-ups
    def lookup(self, layer: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(R, S, T) of ``layer`` at energies exp(u), stacked on a last axis of 3.

        ``layer`` is a long tensor broadcastable to ``u`` ([B, ...]); u is clamped to the grid.
        """
        q, t = self._index(layer, u)
        return self._interpolate(self._rows(q), t)

    def stopping(self, layer: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """S of ``layer`` at energies exp(u) (keV/TFU)."""
        return self.lookup(layer, u)[..., S]

    def invert(self, layer: torch.Tensor, rng: torch.Tensor):
        """Energy at which ``layer``'s range function equals ``rng``.

        Returns (u, (R, S, T) there, inside): u = ln E and a mask that is False where ``rng``
        fell below the grid (the particle stopped).
        """
        batch = rng.shape[0]
        lay = layer.expand_as(rng).reshape(batch, -1)
        top = torch.gather(self.range_top, 1, lay).view(rng.shape)
        off = torch.gather(self.offsets, 1, lay).view(rng.shape)
        inside = rng >= 0.0
        r = torch.minimum(rng.clamp_min(0.0), top)
        q = torch.searchsorted(self.sorted_range, (r + off).detach().reshape(batch, -1))
        lo = layer * self.size
        q = torch.maximum(torch.minimum(q.view(rng.shape) - 1, lo + self.size - 2), lo)
        rows = self._rows(q)
        r0, r1 = rows[..., 0, R], rows[..., 2, R]
        dr = r1 - r0
        # Hermite interpolation of u(R) on [r0, r1], with du/dR = 1 / (dR/du) at both ends:
        # in units of the grid step, u = u_j + h·(h01 + Δr/h (h10/R'_0 + h11/R'_1))
        w = torch.linalg.vander((r - r0) / dr, N=4) @ self.hermite
        u_j = self.u0 + (q - lo).to(rng.dtype) * self.h
        u = u_j + w[..., 2] * self.h + dr / self.h * (w[..., 1] / rows[..., 1, R]
                                                      + w[..., 3] / rows[..., 3, R])
        return u, self._interpolate(rows, ((u - u_j) / self.h).clamp(0.0, 1.0)), inside

    def cross(self, layer: torch.Tensor, u: torch.Tensor, variance: torch.Tensor,
              path: torch.Tensor):
        """Move particles of energy exp(u) and energy variance ``variance`` along ``path``
        TFU of ``layer``.

        Returns (u_out, variance_out, S_out/S_in, S_in, inside).
        """
        before = self.lookup(layer, u)
        u_out, after, inside = self.invert(layer, before[..., R] - path)
        ratio = after[..., S] / before[..., S]
        batch = u.shape[0]
        om2 = torch.gather(self.omega2, 1, layer.expand_as(u).reshape(batch, -1)).view(u.shape)
        var_out = ratio * ratio * variance + om2 * after[..., S] ** 2 * (
            before[..., T] - after[..., T])
        return u_out, var_out, ratio, before[..., S], inside
