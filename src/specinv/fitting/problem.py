"""χ² fits of many measured spectra with one batched forward model.

A :class:`SpectrumFitProblem` holds the observed counts of B spectra, the region of
interest and the parameter bounds; it evaluates χ² (for Nelder–Mead), residuals and their
Jacobians (for Levenberg–Marquardt) of any set of (parameters, spectrum) pairs with as few
simulator calls as possible.  Minimisers only ever see arrays; the simulator is a callable
``simulate(params [K, D] tensor) -> expected counts [K, C] tensor``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.autograd import forward_ad

Simulate = Callable[[torch.Tensor], torch.Tensor]


class SpectrumFitProblem:
    """Independent χ² fits of ``observed`` [B, C] spectra.

    χ²_b(y) = Σ_{i ∈ RoI} (x_bi − s_i(y))² / (x_bi + 1), the paper's eq. (4) restricted to
    the region of interest; residuals r_bi = (x_bi − s_i(y)) / sqrt(x_bi + 1).

    Args:
        simulate: batched forward model, parameters [K, D] -> expected counts [K, C].
        observed: measured counts [B, C] (non-negative, finite).
        roi: boolean mask [C] of the channels in χ² (default: all).
        low, high: parameter bounds [D] (fits stay inside them).
        batch_size: largest number of parameter sets per simulator call.
        dtype, device: of the tensors given to ``simulate``.

    Attributes:
        n_simulations: simulated spectra per observed spectrum so far [B] (the cost of
            the fits; a finite-difference Jacobian costs D + 1).
    """

    def __init__(self, simulate: Simulate, observed: np.ndarray, roi: np.ndarray | None,
                 low: np.ndarray, high: np.ndarray, *, batch_size: int = 4096,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        observed = np.asarray(observed)
        if observed.ndim != 2:
            raise ValueError(f"observed: expected counts [spectra, channels], got shape "
                             f"{observed.shape}")
        if not np.isfinite(observed).all() or (observed < 0).any():
            raise ValueError("observed: counts must be finite and >= 0")
        n_channels = observed.shape[1]
        roi = np.ones(n_channels, dtype=bool) if roi is None else np.asarray(roi, dtype=bool)
        if roi.shape != (n_channels,) or not roi.any():
            raise ValueError(f"roi: expected a boolean mask of {n_channels} channels with at "
                             f"least one True, got shape {roi.shape}")
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"low, high: expected two vectors [D], got {self.low.shape} and "
                             f"{self.high.shape}")
        if not (self.low < self.high).all():
            raise ValueError("low, high: every lower bound must be below its upper bound")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.simulate = simulate
        self.batch_size = int(batch_size)
        self.dtype, self.device = dtype, torch.device(device)
        self.roi = roi
        index = np.nonzero(roi)[0]
        # a contiguous region of interest is a slice (no copy of the simulated spectra)
        self._roi_index = (slice(int(index[0]), int(index[-1]) + 1)
                           if index[-1] - index[0] + 1 == len(index)
                           else torch.as_tensor(index, device=self.device))
        x = torch.as_tensor(observed[:, roi], dtype=dtype, device=self.device)
        self._x = x                                         # [B, R]
        self._inv_w = torch.rsqrt(x + 1.0)                  # 1 / sqrt(x + 1)
        self.n_simulations = np.zeros(len(observed), dtype=np.int64)

    @property
    def n_spectra(self) -> int:
        return self._x.shape[0]

    @property
    def n_parameters(self) -> int:
        return self.low.size

    @property
    def dof(self) -> int:
        """Degrees of freedom of the ideal χ² (the number of RoI channels)."""
        return int(self.roi.sum())

    def _expected_roi(self, params: torch.Tensor) -> torch.Tensor:
        parts = [self.simulate(params[i:i + self.batch_size])[:, self._roi_index]
                 for i in range(0, params.shape[0], self.batch_size)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def residuals(self, params, rows) -> torch.Tensor:
        """r [K, R] of parameter sets ``params`` [K, D] for spectra ``rows`` [K]
        (differentiable when ``params`` is a tensor that requires grad)."""
        return self._residual_groups(params, rows, 1)[:, 0]

    def _residual_groups(self, params, rows, per_row: int) -> torch.Tensor:
        """r [K, M, R] of ``params`` [K·M, D], M consecutive parameter sets per spectrum of
        ``rows`` [K] (each spectrum's counts are gathered once, not M times)."""
        p = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        rows = np.asarray(rows, dtype=np.int64)
        if (p.dim() != 2 or p.shape[1] != self.n_parameters
                or rows.shape != (p.shape[0] // per_row,) or p.shape[0] % per_row):
            raise ValueError(f"params, rows: expected [K, {self.n_parameters}] and [K], got "
                             f"{tuple(p.shape)} and {rows.shape}")
        np.add.at(self.n_simulations, rows, per_row)
        r = torch.as_tensor(rows, device=self.device)
        if len(rows) == self.n_spectra and (rows == np.arange(len(rows))).all():
            x, w = self._x, self._inv_w
        else:
            x, w = self._x.index_select(0, r), self._inv_w.index_select(0, r)
        expected = self._expected_roi(p).view(len(rows), per_row, -1)
        return (x[:, None] - expected) * w[:, None]

    def chi2(self, params, rows) -> np.ndarray:
        """χ² [K] of ``params`` [K, D] for spectra ``rows`` [K] (the Nelder–Mead objective)."""
        with torch.no_grad():
            r = self.residuals(params, rows)
            return (r * r).sum(-1).cpu().numpy().astype(np.float64)

    def jacobian(self, params: np.ndarray, rows, method: str = "finite-difference",
                 relative_step: float = 1e-6,
                 base: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals r [K, R] and their Jacobian dr/dy [K, R, D] at ``params`` [K, D].

        ``method``: ``"finite-difference"`` (forward differences with steps of
        ``relative_step``·max(|y|, 1), taken towards the inside of the bounds; D + 1
        simulations per row, or D when the residuals at ``params`` are passed as ``base``)
        or ``"forward-mode"`` (exact derivatives through the differentiable simulator by
        forward-mode autodiff; D dual-number simulations).
        """
        p = np.asarray(params, dtype=np.float64)
        k, d = p.shape
        rows = np.asarray(rows, dtype=np.int64)
        if method == "forward-mode":
            base = torch.as_tensor(np.repeat(p, d, axis=0), dtype=self.dtype,
                                   device=self.device)
            tangent = torch.eye(d, dtype=self.dtype, device=self.device).repeat(k, 1)
            with torch.no_grad(), forward_ad.dual_level():
                out = self._residual_groups(forward_ad.make_dual(base, tangent), rows, d)
                primal, jt = forward_ad.unpack_dual(out)                 # [K, D, R] each
            return primal[:, 0], jt.transpose(1, 2)
        if method != "finite-difference":
            raise ValueError(f"method: expected finite-difference or forward-mode, got "
                             f"{method!r}")
        step = relative_step * np.maximum(np.abs(p), 1.0)
        step = np.where(p + step > self.high, -step, step)          # stay inside the box
        shifted = np.repeat(p[:, None, :], d + 1, axis=1)            # [K, D+1, D]
        idx = np.arange(d)
        shifted[:, 1 + idx, idx] += step
        first = 0 if base is None else 1                             # row 0: params itself
        with torch.no_grad():
            r_all = self._residual_groups(shifted[:, first:].reshape(-1, d), rows,
                                          d + 1 - first)             # [K, D + 1 − first, R]
        r0 = r_all[:, 0] if base is None else base.to(r_all.dtype)
        h = torch.as_tensor(shifted[:, 1 + idx, idx] - p, dtype=self.dtype,
                            device=self.device)                      # steps as represented
        jac = (r_all[:, 1 - first:] - r0[:, None]) / h[..., None]    # [K, D, R]
        return r0, jac.transpose(1, 2)
