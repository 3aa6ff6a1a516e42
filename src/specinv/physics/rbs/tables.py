"""Per-sample energy-loss tables of every layer, and fast batched look-ups in them.

For each sample b and layer l the stopping S_l(E) (keV/TFU, Bragg's rule) is known on a
grid uniform in u = ln E.  From it we build, on the same grid,

* the range function  R_l(E) = ∫ dE / S_l(E)   (TFU of path needed to slow down to the
  bottom of the grid), so that crossing a path p changes E into R_l⁻¹(R_l(E) − p);
* the straggling integral  T_l(E) = ∫ dE / S_l(E)³, so that an energy spread with variance
  v at E_in becomes (S(E_out)/S(E_in))² v + ω_l² S(E_out)² (T(E_in) − T(E_out)) after the
  crossing: the exact solution of dv/dp = −2 S'(E) v + ω² (with dE/dp = −S) for Bohr's ω²
  per TFU of path,
  i.e. non-statistical broadening plus straggling accumulated along the path.

Values and u-derivatives are stored at the grid nodes and interpolated with cubic Hermite
polynomials, so every look-up is C¹ in its arguments (smooth gradients) and accurate to
O(h⁴).  The integrals use the trapezoid rule with the Euler–Maclaurin end correction,
which is exact for the Hermite interpolant of the integrand.

The tables of all layers of all samples of a batch are stacked as "rows"; every look-up
takes a row index per point, so points of different samples and layers go in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# quantities of the packed table (each stored as value and d/du)
R, S, T = 0, 1, 2
_NQ = 3


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
    """Range, stopping and straggling tables of N "rows" (a row is one layer of one sample).

    Attributes:
        u0, h: first node and spacing of the ln(E/keV) grid; ``size`` nodes per row.
        coef: [N·size − 1, 4, 3]: on each grid interval, the cubic (Hermite) polynomials in
            t ∈ [0, 1] of (R, S, T): value = Σ_p coef[p] t^p.
        range_pairs: [N·size − 1, 4]: R and 1/(h dR/du) at the start, R and 1/(h dR/du) at
            the end of each interval.
        sorted_range: [N·size] R plus per-row offsets, increasing (for inverse look-ups;
            float64 whatever the working precision).
        offsets: [N] the per-row offsets.
        range_top: [N] R at the top node of each row.
        omega2: [N] straggling variance per TFU of path (keV²/TFU).
    """

    u0: float
    h: float
    size: int
    coef: torch.Tensor
    range_pairs: torch.Tensor
    sorted_range: torch.Tensor
    offsets: torch.Tensor
    range_top: torch.Tensor
    omega2: torch.Tensor

    @classmethod
    def build(cls, stopping: torch.Tensor, omega2: torch.Tensor, u0: float, h: float):
        """Tables from the stopping [N, G] (keV/TFU) on the grid E_i = exp(u0 + i h)."""
        rows, size = stopping.shape
        energy = torch.exp(u0 + h * torch.arange(size, dtype=stopping.dtype,
                                                 device=stopping.device))
        g_r = energy / stopping  # dR/du
        g_t = g_r / (stopping * stopping)  # dT/du
        ds = _du(stopping, h)
        # u-derivatives of g_r = E/S and g_t = E/S³ from that of S
        log_slope = ds / stopping
        rng = _cumulative(g_r, g_r - g_r * log_slope, h)
        strag = _cumulative(g_t, g_t - 3.0 * g_t * log_slope, h)
        values = torch.stack([rng, stopping, strag], -1).reshape(rows * size, _NQ)
        slopes = torch.stack([g_r, ds, g_t], -1).reshape(rows * size, _NQ) * h
        # cubic Hermite polynomial on each interval, in t = (u − u_q)/h
        y0, y1, m0, m1 = values[:-1], values[1:], slopes[:-1], slopes[1:]
        coef = torch.stack([y0, m0, 3.0 * (y1 - y0) - 2.0 * m0 - m1,
                            2.0 * (y0 - y1) + m0 + m1], 1)                # [N·G−1, 4, 3]
        # (R, dR/du) at the start and the end of each interval, [N·G−1, 4]
        pairs = torch.stack([values[:, R], 1.0 / (h * g_r.reshape(-1))], -1)
        pairs = torch.cat([pairs[:-1], pairs[1:]], -1)
        range_top = rng[:, -1]
        step = range_top.detach().double() + 1.0
        offsets = torch.cumsum(step, 0) - step
        sorted_range = (rng.detach().double() + offsets[:, None]).reshape(-1).contiguous()
        return cls(u0=u0, h=h, size=size, coef=coef, range_pairs=pairs,
                   sorted_range=sorted_range, offsets=offsets, range_top=range_top,
                   omega2=omega2)

    # ------------------------------------------------------------------ look-ups
    def _evaluate(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(R, S, T) on interval q at t ∈ [0, 1] (Horner's scheme)."""
        c0, c1, c2, c3 = self.coef.index_select(0, q.reshape(-1)).view(
            *q.shape, 4, _NQ).unbind(-2)
        t = t.unsqueeze(-1)
        return torch.addcmul(c0, t, torch.addcmul(c1, t, torch.addcmul(c2, t, c3)))

    def lookup(self, row: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(R, S, T) of table ``row`` at energies exp(u), stacked on a last axis of 3.

        ``row`` (long) broadcasts against ``u``; u is clamped to the grid.
        """
        pos = ((u - self.u0) * (1.0 / self.h)).clamp(0.0, self.size - 1.0)
        i = pos.detach().floor().clamp_(max=self.size - 2)
        return self._evaluate(row * self.size + i.long(), pos - i)

    def stopping(self, row: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """S of table ``row`` at energies exp(u) (keV/TFU)."""
        return self.lookup(row, u)[..., S]

    def invert(self, row: torch.Tensor, rng: torch.Tensor):
        """Energy at which the range function of table ``row`` equals ``rng``.

        ``row`` must have the shape of ``rng``.  Returns (u, (R, S, T) there, inside):
        u = ln E and a mask that is False where ``rng`` fell below the grid (the particle
        stopped).
        """
        inside = rng >= 0.0
        r = torch.minimum(rng.clamp(min=0.0), self.range_top[row])
        q = torch.searchsorted(self.sorted_range, r.detach().double() + self.offsets[row])
        lo = row * self.size
        q = torch.clamp(q - 1, min=lo, max=lo + (self.size - 2))
        r0, w0, r1, w1 = self.range_pairs.index_select(0, q.reshape(-1)).view(
            *q.shape, 4).unbind(-1)
        dr = r1 - r0
        # Hermite interpolation of u(R) on [r0, r1], with du/dR = 1/R' at both ends:
        # u = u_j + h·h01(τ) + Δr (h10(τ)/R'_0 + h11(τ)/R'_1)
        tau = (r - r0) / dr
        tm1 = tau - 1.0
        t = torch.addcmul(tau * tau * (3.0 - 2.0 * tau), dr * tau * tm1,
                          torch.addcmul(tm1 * w0, tau, w1))
        u = self.u0 + (q - lo).to(rng.dtype) * self.h + t * self.h
        return u, self._evaluate(q, t.clamp(0.0, 1.0)), inside

    def cross(self, row: torch.Tensor, u: torch.Tensor, variance: torch.Tensor,
              path: torch.Tensor):
        """Move particles of energy exp(u) and energy variance ``variance`` along ``path``
        TFU of table ``row`` (same shape as ``u``).

        Returns (u_out, variance_out, S_out/S_in, S_in, inside).
        """
        before = self.lookup(row, u)
        r_in, s_in, t_in = before.unbind(-1)
        u_out, after, inside = self.invert(row, r_in - path)
        _, s_out, t_out = after.unbind(-1)
        ratio = s_out / s_in
        var_out = ratio * ratio * variance + self.omega2[row] * s_out * s_out * (t_in - t_out)
        return u_out, var_out, ratio, s_in, inside
