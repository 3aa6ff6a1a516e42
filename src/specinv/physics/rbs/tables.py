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
    return torch.nn.functional.pad(torch.cumsum(steps, dim=-1), (1, 0))


@dataclass
class LayerTables:
    """Range, stopping and straggling tables of N "rows" (a row is one layer of one sample).

    Attributes:
        u0, h: first node and spacing of the ln(E/keV) grid; ``size`` nodes per row.
        coef: [N·size − 1, 4, 3]: on each grid interval, the cubic (Hermite) polynomials in
            t ∈ [0, 1] of (R, S, T): value = Σ_p coef[p] t^p.
        inverse: [N·size − 1, 5]: per interval, what the inverse look-up R → u needs:
            −R_q/ΔR, 1/ΔR, the two coefficients of its cubic, and u at the interval start.
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
    inverse: torch.Tensor
    sorted_range: torch.Tensor
    offsets: torch.Tensor
    range_top: torch.Tensor
    omega2: torch.Tensor
    pos0: torch.Tensor  # 0-dim: −u0/h, the grid position of u = 0
    zero: torch.Tensor  # 0-dim: 0

    @classmethod
    def build(
        cls,
        stopping: torch.Tensor,
        omega2: torch.Tensor,
        u0: float,
        h: float,
        stopping_slope: torch.Tensor | None = None,
        energy: torch.Tensor | None = None,
    ):
        """Tables from the stopping [N, G] (keV/TFU) on the grid E_i = exp(u0 + i h).

        ``stopping_slope`` is dS/du on the same grid (by default: finite differences of
        ``stopping``; a caller that mixes fixed per-element tables linearly can pass the same
        mixture of their slopes), ``energy`` the grid energies (keV, computed if not given).
        """
        rows, size = stopping.shape
        if energy is None:
            energy = torch.exp(
                u0 + h * torch.arange(size, dtype=stopping.dtype, device=stopping.device)
            )
        ds = _du(stopping, h) if stopping_slope is None else stopping_slope
        g_r = energy / stopping  # dR/du
        g_t = g_r / (stopping * stopping)  # dT/du
        # u-derivatives of g_r = E/S and g_t = E/S³ from that of S; both integrals at once
        log_slope = ds / stopping
        g = torch.stack([g_r, g_t])
        dg = g * torch.stack([1.0 - log_slope, 1.0 - 3.0 * log_slope])
        rng, strag = _cumulative(g, dg, h).unbind(0)
        values = torch.stack([rng, stopping, strag], -1).view(rows * size, _NQ)
        slopes = torch.stack([g_r, ds, g_t], -1).view(rows * size, _NQ) * h
        # cubic Hermite polynomial on each interval, in t = (u − u_q)/h
        y0, y1, m0, m1 = values[:-1], values[1:], slopes[:-1], slopes[1:]
        dy = y1 - y0
        coef = torch.stack([y0, m0, 3.0 * dy - 2.0 * m0 - m1, m0 + m1 - 2.0 * dy], 1)
        # inverse interpolation of u(R) on each interval (see invert): with τ the position
        # of R in [R_q, R_q+1] and a, b the end slopes du/dR·ΔR/h, t = τ + τ(τ−1)(c0 + c1 τ)
        r_flat, m_flat = rng.reshape(-1), slopes[:, R]
        dr = r_flat[1:] - r_flat[:-1]
        inv_dr = 1.0 / dr
        a, b = dr / m_flat[:-1], dr / m_flat[1:]
        u_start = (
            u0 + h * torch.arange(size, dtype=stopping.dtype, device=stopping.device)
        ).repeat(rows)[:-1]
        inverse = torch.stack([-r_flat[:-1] * inv_dr, inv_dr, 1.0 - a, a + b - 2.0, u_start], -1)
        range_top = rng[:, -1]
        step = range_top.detach().double() + 1.0
        offsets = torch.cumsum(step, 0) - step
        sorted_range = rng.detach().double() + offsets[:, None]
        # the top of each row is nudged up (by less than the gap to the next row), so that a
        # search for it (right side) still lands in the row's last interval
        sorted_range[:, -1] += 0.5
        pos0 = torch.tensor(-u0 / h, dtype=stopping.dtype, device=stopping.device)
        return cls(
            u0=u0,
            h=h,
            size=size,
            coef=coef,
            inverse=inverse,
            sorted_range=sorted_range.view(-1),
            offsets=offsets,
            range_top=range_top,
            omega2=omega2,
            pos0=pos0,
            zero=torch.zeros_like(pos0),
        )

    # ------------------------------------------------------------------ look-ups
    def _evaluate(self, q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(R, S, T) on interval q at t ∈ [0, 1] (Horner's scheme)."""
        c = self.coef.index_select(0, q if q.dim() == 1 else q.reshape(-1))
        if q.dim() != 1:
            c = c.view(*q.shape, 4, _NQ)
        c0, c1, c2, c3 = c.unbind(-2)
        t = t.unsqueeze(-1)
        return torch.addcmul(c0, t, torch.addcmul(c1, t, torch.addcmul(c2, t, c3)))

    def lookup(self, row: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(R, S, T) of table ``row`` at energies exp(u), stacked on a last axis of 3.

        ``row`` (long) broadcasts against ``u``; u is clamped to the grid.
        """
        pos = torch.add(self.pos0, u, alpha=1.0 / self.h).clamp(0.0, self.size - 1.0)
        i = pos.floor().clamp(max=self.size - 2.0)
        return self._evaluate(i.long().add(row, alpha=self.size), pos - i)

    def stopping(self, row: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """S of table ``row`` at energies exp(u) (keV/TFU)."""
        return self.lookup(row, u)[..., S]

    def invert(self, row: torch.Tensor, rng: torch.Tensor, values: bool = True):
        """Energy at which the range function of table ``row`` equals ``rng``.

        ``row`` must have the shape of ``rng``; ``rng`` is clamped to the table (a particle
        whose remaining range is below 0 has stopped: see :meth:`cross`).  Returns
        (u, (R, S, T) there): u = ln E, and the table values unless ``values`` is False.
        """
        r = torch.clamp(rng, min=self.zero, max=self.range_top.take(row))
        key = (r.detach() if r.requires_grad else r).double() + self.offsets.take(row)
        q = torch.searchsorted(self.sorted_range, key, right=True).sub_(1)
        p = self.inverse.index_select(0, q if q.dim() == 1 else q.reshape(-1))
        if q.dim() != 1:
            p = p.view(*q.shape, 5)
        shift, inv_dr, c0, c1, u_q = p.unbind(-1)
        # Hermite interpolation of u(R) on [R_q, R_q+1] with du/dR = 1/R' at both ends
        tau = torch.addcmul(shift, r, inv_dr)
        t = torch.addcmul(tau, tau * (tau - 1.0), torch.addcmul(c0, c1, tau))
        u = torch.add(u_q, t, alpha=self.h)
        if not values:
            return u, None
        # the cubic u(R) is the inverse of the table's R(u) only up to O(h⁴); one Newton
        # step on R(u) (dR/du = E/S) removes that, which matters where a small difference
        # of ranges is an energy loss (thin layers: ΔR ≪ R).  T follows to first order
        # (dT/dR = 1/S²).
        r_at, s_at, t_at = self._evaluate(q, t.clamp(0.0, 1.0)).unbind(-1)
        dr = r - r_at
        return (
            torch.addcmul(u, dr, s_at / torch.exp(u)),
            torch.stack([r, s_at, torch.addcdiv(t_at, dr, s_at * s_at)], -1),
        )

    def cross(
        self,
        row: torch.Tensor,
        u: torch.Tensor,
        variance: torch.Tensor,
        path: torch.Tensor,
        before: torch.Tensor | None = None,
    ):
        """Move particles of energy exp(u) and energy variance ``variance`` along ``path``
        TFU of table ``row`` (same shape as ``u``); ``before`` may hold ``lookup(row, u)``
        when the caller has it already.

        Returns (u_out, variance_out, S_out/S_in, S_in, inside): ``inside`` is False where the
        particle stopped on the way.
        """
        if before is None:
            before = self.lookup(row, u)
        r_in, s_in, t_in = before.unbind(-1)
        rng = r_in - path
        u_out, after = self.invert(row, rng)
        _, s_out, t_out = after.unbind(-1)
        ratio = s_out / s_in
        var_out = torch.addcmul(
            ratio * ratio * variance, self.omega2.take(row) * s_out * s_out, t_in - t_out
        )
        return u_out, var_out, ratio, s_in, rng >= 0.0
