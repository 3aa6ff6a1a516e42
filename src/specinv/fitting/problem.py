"""χ² fits of many measured spectra with one batched forward model.

A :class:`SpectrumFitProblem` holds the observed counts of B spectra, the region of
interest and the parameter bounds; it evaluates χ² (for Nelder–Mead), residuals and their
Jacobians (for Levenberg–Marquardt) of any set of (parameters, spectrum) pairs with as few
simulator calls as possible.  Minimisers only ever see arrays; the simulator is a callable
``simulate(params [K, D] tensor) -> expected counts [K, C] tensor``, optionally with a
:class:`~specinv.techniques.base.PartialSimulation` that simulates only the part of a
spectrum a group of parameters can change (finite-difference Jacobians then cost less).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.autograd import forward_ad

from ..techniques.base import PartialSimulation
from .settings import STATISTICS

Simulate = Callable[[torch.Tensor], torch.Tensor]


#: statistics whose residuals are not linear in the expected counts
NONLINEAR_STATISTICS = ("log10", "deviance")
#: added to the expected counts in the deviance: an empty model channel stays finite
DEVIANCE_FLOOR = 1e-6


def deviance_residuals(observed: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Poisson deviance residuals sign(x − λ) sqrt(2 (λ − x + x ln(x / λ))) with λ the
    expected counts plus :data:`DEVIANCE_FLOOR` (x ln(x/λ) = 0 for x = 0); exact zero
    where λ = x, with a zero derivative there too (forward-mode safe)."""
    lam = expected.clamp_min(0.0) + DEVIANCE_FLOOR
    x = observed.to(lam.dtype).expand_as(lam)
    # λ − x + x ln(x/λ) = x (u − ln(1 + u)) with u = λ/x − 1: no cancellation near λ = x
    counted = x > 0
    x_safe = torch.where(counted, x, torch.ones_like(x))
    u = lam / x_safe - 1.0
    d = torch.where(counted, x_safe * (u - torch.log1p(u)), lam).clamp_min(0.0)
    positive = d > 0
    root = torch.sqrt(2.0 * torch.where(positive, d, torch.ones_like(d)))
    return torch.where(positive, torch.sign(x - lam) * root, torch.zeros_like(d))


class SpectrumFitProblem:
    """Independent least-squares fits of ``observed`` [B, C] spectra.

    ``statistic="poisson"`` (the default): χ²_b(y) = Σ_{i ∈ RoI} (x_bi − s_i(y))² /
    (x_bi + 1) (Muzakka et al. 2024, eq. 4) over the region of interest; residuals
    r_bi = (x_bi − s_i(y)) / sqrt(x_bi + 1).

    ``statistic="deviance"``: r_bi = sign(x_bi − λ_bi) sqrt(2 (λ_bi − x_bi + x_bi ln(x_bi /
    λ_bi))), λ = s(y) + 10⁻⁶ (a floor that keeps empty model channels finite): Σ r² is the
    Poisson deviance, −2 ln L up to a constant, so its minimum is the maximum-likelihood
    (with a prior: maximum a posteriori) estimate, unbiased where counts are low — unlike
    the χ² of eq. 4, whose 1/(x + 1) weights pull fits towards low-count channels.

    ``statistic="log10"``: r_bi = log10(x_bi + f_b) − log10(s_i(y) + f_b), every decade of a
    spectrum weighted alike (for spectra spanning several decades), with f_b half the
    smallest positive value of spectrum b (0.5 if it has none) so that empty channels stay
    finite.  The sum of squares is then not a χ²; it is what the minimisers see.

    With ``weights`` w_bi given, the residuals are multiplied by them instead of the
    Poisson weights (``poisson``: r_bi = (x_bi − s_i(y)) w_bi; ``log10``: default 1).

    Args:
        simulate: batched forward model, parameters [K, D] -> expected counts [K, C].
        observed: measured counts [B, C] (non-negative, finite).
        roi: boolean mask [C] of the channels in χ² (default: all).
        low, high: parameter bounds [D] (fits stay inside them).
        batch_size: largest number of parameter sets per simulator call.
        dtype, device: of the tensors given to ``simulate``.
        partial: how to simulate only the part of a spectrum that a group of parameters
            changes (None: every parameter changes all of it); used by finite-difference
            Jacobians where it costs less than whole spectra.
        weights: residual weights [B, C] (finite, >= 0) instead of the statistic's own
            (Poisson: 1/sqrt(x + 1); log10: 1).
        statistic: ``poisson``, ``deviance`` or ``log10`` (above); ``deviance`` and
            ``log10`` take no ``partial`` nor ``weights`` (their residuals are not sums of
            the groups' contributions).
        prior_mean, prior_std: a Gaussian prior per spectrum and parameter [B, D] (e.g. a
            network's estimate and its uncertainty): D more residuals (μ_bj − y_j) / σ_bj
            after the channels', so that a fit stays at μ along the directions the
            spectrum does not determine (a maximum a posteriori fit). ``inf`` in
            ``prior_std`` leaves a parameter free.

    Attributes:
        n_simulations: simulated spectra per observed spectrum so far [B], in whole-spectrum
            equivalents (the cost of the fits; a partial simulation counts its
            ``relative_cost``; a finite-difference Jacobian without partial simulations
            costs D + 1).
    """

    def __init__(
        self,
        simulate: Simulate,
        observed: np.ndarray,
        roi: np.ndarray | None,
        low: np.ndarray,
        high: np.ndarray,
        *,
        batch_size: int = 4096,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        partial: PartialSimulation | None = None,
        weights: np.ndarray | None = None,
        statistic: str = "poisson",
        prior_mean: np.ndarray | None = None,
        prior_std: np.ndarray | None = None,
    ):
        observed = np.asarray(observed)
        if observed.ndim != 2:
            raise ValueError(
                f"observed: expected counts [spectra, channels], got shape {observed.shape}"
            )
        if statistic not in STATISTICS:
            raise ValueError(f"statistic: expected one of {STATISTICS}, got {statistic!r}")
        if statistic in NONLINEAR_STATISTICS and partial is not None:
            raise ValueError(f"partial: the {statistic} statistic takes no partial simulations")
        if statistic == "deviance" and weights is not None:
            raise ValueError("weights: the deviance statistic takes no weights")
        if not np.isfinite(observed).all() or (observed < 0).any():
            raise ValueError("observed: counts must be finite and >= 0")
        self.statistic = statistic
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != observed.shape or not (np.isfinite(weights) & (weights >= 0)).all():
                raise ValueError(
                    f"weights: expected finite values >= 0 of shape {observed.shape}, got "
                    f"shape {weights.shape}"
                )
        n_channels = observed.shape[1]
        roi = np.ones(n_channels, dtype=bool) if roi is None else np.asarray(roi, dtype=bool)
        if roi.shape != (n_channels,) or not roi.any():
            raise ValueError(
                f"roi: expected a boolean mask of {n_channels} channels with at "
                f"least one True, got shape {roi.shape}"
            )
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(
                f"low, high: expected two vectors [D], got {self.low.shape} and {self.high.shape}"
            )
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
        self._roi_index = (
            slice(int(index[0]), int(index[-1]) + 1)
            if index[-1] - index[0] + 1 == len(index)
            else torch.as_tensor(index, device=self.device)
        )
        x = torch.as_tensor(observed[:, roi], dtype=dtype, device=self.device)
        if statistic == "log10":
            self._floor = torch.as_tensor(  # f_b [B, 1]: half the smallest positive value
                [[0.5 * row[row > 0].min() if (row > 0).any() else 0.5] for row in observed],
                dtype=dtype,
                device=self.device,
            )
            x = torch.log10(x + self._floor)
        self._x = x  # [B, R]: counts, or log10(counts + f)
        if weights is not None:
            self._inv_w = torch.as_tensor(weights[:, roi], dtype=dtype, device=self.device)
        elif statistic == "poisson":
            self._inv_w = torch.rsqrt(x + 1.0)
        else:
            self._inv_w = torch.ones_like(x)
        self._prior = None
        if (prior_mean is None) != (prior_std is None):
            raise ValueError("prior_mean, prior_std: expected both or neither")
        if prior_mean is not None:
            mean = np.asarray(prior_mean, dtype=np.float64)
            std = np.asarray(prior_std, dtype=np.float64)
            shape = (len(observed), self.low.size)
            if mean.shape != shape or std.shape != shape:
                raise ValueError(
                    f"prior_mean, prior_std: expected shape {shape}, got {mean.shape} and "
                    f"{std.shape}"
                )
            if not np.isfinite(mean).all() or np.isnan(std).any() or (std <= 0).any():
                raise ValueError(
                    "prior_mean, prior_std: expected finite means and standard deviations > 0 "
                    "(inf for none)"
                )
            self._prior = (
                torch.as_tensor(mean, dtype=dtype, device=self.device),
                torch.as_tensor(1.0 / std, dtype=dtype, device=self.device),
            )
        self.n_simulations = np.zeros(len(observed), dtype=np.float64)
        self.partial = partial
        if partial is not None:
            group = np.asarray(partial.parameter_group)
            cost = np.asarray(partial.relative_cost, dtype=np.float64)
            if (
                group.shape != self.low.shape
                or not np.issubdtype(group.dtype, np.integer)
                or cost.ndim != 1
                or group.min() < 0
                or group.max() >= cost.size
                or not ((cost >= 0) & (cost <= 1)).all()
            ):
                raise ValueError(
                    f"partial: expected a group in [0, G) for each of the "
                    f"{self.low.size} parameters and G relative costs in [0, 1], "
                    f"got groups {group.tolist()} and costs {cost.tolist()}"
                )

    @property
    def n_spectra(self) -> int:
        return self._x.shape[0]

    @property
    def has_prior(self) -> bool:
        """Whether the residuals end with a Gaussian prior's terms."""
        return self._prior is not None

    @property
    def n_parameters(self) -> int:
        return self.low.size

    @property
    def dof(self) -> int:
        """Degrees of freedom of the ideal χ² (the number of RoI channels)."""
        return int(self.roi.sum())

    def _expected_roi(self, params: torch.Tensor, group: int = 0) -> torch.Tensor:
        """Expected counts [K, R] in the RoI: whole spectra, or (``group`` > 0) the part
        that the parameters of groups >= ``group`` change."""
        if group:
            simulate = lambda p: self.partial.simulate_from(p, group)  # noqa: E731
        else:
            simulate = self.simulate
        parts = [
            simulate(params[i : i + self.batch_size])[:, self._roi_index]
            for i in range(0, params.shape[0], self.batch_size)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def residuals(self, params, rows) -> torch.Tensor:
        """r [K, R] of parameter sets ``params`` [K, D] for spectra ``rows`` [K]
        (differentiable when ``params`` is a tensor that requires grad)."""
        return self._residual_groups(params, rows, 1)[:, 0]

    def _residual_groups(self, params, rows, per_row: int) -> torch.Tensor:
        """r [K, M, R] of ``params`` [K·M, D], M consecutive parameter sets per spectrum of
        ``rows`` [K] (each spectrum's counts are gathered once, not M times)."""
        params = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        expected, rows = self._simulated(params, rows, per_row)
        x, w = self._observed(rows)
        if self.statistic == "log10":
            floor = self._floor[torch.as_tensor(rows, device=self.device)]  # [K, 1]
            expected = torch.log10(expected.clamp_min(0.0) + floor[:, None])
        if self.statistic == "deviance":
            r = deviance_residuals(x[:, None], expected)
        else:
            r = (x[:, None] - expected) * w[:, None]
        if self._prior is None:
            return r
        mean, inv_std = self._prior_of(rows)
        y = params.reshape(len(rows), per_row, -1)
        return torch.cat([r, (mean[:, None] - y) * inv_std[:, None]], dim=-1)

    def _prior_of(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior means and inverse standard deviations [K, D] of the spectra ``rows``."""
        r = torch.as_tensor(rows, device=self.device)
        mean, inv_std = self._prior
        return mean.index_select(0, r), inv_std.index_select(0, r)

    def _simulated(self, params, rows, per_row: int, group: int = 0):
        """Expected RoI counts [K, M, R] (of groups >= ``group``) of ``params`` [K·M, D],
        charged to the spectra ``rows`` [K]; and the rows as an array."""
        p = torch.as_tensor(params, dtype=self.dtype, device=self.device)
        rows = np.asarray(rows, dtype=np.int64)
        if (
            p.dim() != 2
            or p.shape[1] != self.n_parameters
            or rows.shape != (p.shape[0] // per_row,)
            or p.shape[0] % per_row
        ):
            raise ValueError(
                f"params, rows: expected [K, {self.n_parameters}] and [K], got "
                f"{tuple(p.shape)} and {rows.shape}"
            )
        cost = 1.0 if group == 0 else float(self.partial.relative_cost[group])
        np.add.at(self.n_simulations, rows, per_row * cost)
        return self._expected_roi(p, group).view(len(rows), per_row, -1), rows

    def _observed(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Observed values x [K, R] (counts or their log10) and residual weights [K, R] of
        the spectra ``rows``."""
        if len(rows) == self.n_spectra and (rows == np.arange(len(rows))).all():
            return self._x, self._inv_w
        r = torch.as_tensor(rows, device=self.device)
        return self._x.index_select(0, r), self._inv_w.index_select(0, r)

    def chi2(self, params, rows) -> np.ndarray:
        """Σ r² [K] of ``params`` [K, D] for spectra ``rows`` [K] (the Nelder–Mead objective;
        χ² for the ``poisson`` statistic, plus the prior's term where there is one)."""
        with torch.no_grad():
            r = self.residuals(params, rows)
            return (r * r).sum(-1).cpu().numpy().astype(np.float64)

    def jacobian(
        self,
        params: np.ndarray,
        rows,
        method: str = "finite-difference",
        relative_step: float = 1e-6,
        base: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals r [K, R] and their Jacobian dr/dy [K, R, D] at ``params`` [K, D].

        ``method``: ``"finite-difference"`` (forward differences with steps of
        ``relative_step``·max(|y|, 1), taken towards the inside of the bounds; D + 1
        simulations per row, or D when the residuals at ``params`` are passed as ``base``;
        with a :class:`PartialSimulation`, the steps of a group of n parameters whose n + 1
        partial spectra cost less than n whole ones are taken on the partial spectrum, the
        difference of that at p and at each step)
        or ``"forward-mode"`` (exact derivatives through the differentiable simulator by
        forward-mode autodiff; D dual-number simulations).
        """
        p = np.asarray(params, dtype=np.float64)
        k, d = p.shape
        rows = np.asarray(rows, dtype=np.int64)
        if method == "forward-mode":
            base = torch.as_tensor(np.repeat(p, d, axis=0), dtype=self.dtype, device=self.device)
            tangent = torch.eye(d, dtype=self.dtype, device=self.device).repeat(k, 1)
            with torch.no_grad(), forward_ad.dual_level():
                out = self._residual_groups(forward_ad.make_dual(base, tangent), rows, d)
                primal, jt = forward_ad.unpack_dual(out)  # [K, D, R] each
            return primal[:, 0], jt.transpose(1, 2)
        if method != "finite-difference":
            raise ValueError(f"method: expected finite-difference or forward-mode, got {method!r}")
        step = relative_step * np.maximum(np.abs(p), 1.0)
        step = np.where(p + step > self.high, -step, step)  # stay inside the box
        shifted = np.repeat(p[:, None, :], d + 1, axis=1)  # [K, D+1, D]: row 0 is p
        idx = np.arange(d)
        shifted[:, 1 + idx, idx] += step
        h = torch.as_tensor(
            shifted[:, 1 + idx, idx] - p, dtype=self.dtype, device=self.device
        )  # steps as represented
        partial = self._partial_groups()
        whole = np.setdiff1d(idx, np.concatenate([[], *partial.values()]).astype(int))
        # whole spectra: p itself (unless given) and the steps of the other parameters
        simulated = whole + 1 if base is not None else np.concatenate([[0], whole + 1])
        n_res = self._x.shape[1] + (0 if self._prior is None else d)
        jac = torch.empty((k, d, n_res), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            if len(simulated):
                r_all = self._residual_groups(
                    shifted[:, simulated].reshape(-1, d), rows, len(simulated)
                )  # [K, ·, R]
            r0 = r_all[:, 0] if base is None else base.to(self.dtype)
            if len(whole):
                whole = torch.as_tensor(whole, device=self.device)
                jac[:, whole] = (r_all[:, len(simulated) - len(whole) :] - r0[:, None]) / h[
                    :, whole, None
                ]
            # a group's parameters: differences of the part of the spectrum they change
            # (at p and at each step), dr = −ds / sqrt(x + 1)
            _, w = self._observed(rows)
            n_ch = self._x.shape[1]
            inv_std = None if self._prior is None else self._prior_of(rows)[1]
            for group, members in partial.items():
                points = shifted[:, np.concatenate([[0], members + 1])]
                s, _ = self._simulated(points.reshape(-1, d), rows, len(members) + 1, group)
                cols = torch.as_tensor(members, device=self.device)
                jac[:, cols, :n_ch] = (s[:, :1] - s[:, 1:]) * w[:, None] / h[:, cols, None]
                if inv_std is not None:  # d((μ − y_j)/σ_j)/dy_m = −δ_jm/σ_j
                    jac[:, cols, n_ch:] = 0.0
                    jac[:, cols, n_ch + cols] = -inv_std[:, cols]
        return r0, jac.transpose(1, 2)

    def _partial_groups(self) -> dict[int, np.ndarray]:
        """Parameter groups (> 0) whose finite differences are cheaper from partial
        simulations: n + 1 partial spectra (p and n steps) cost less than n whole ones."""
        if self.partial is None:
            return {}
        group = np.asarray(self.partial.parameter_group)
        out = {}
        for g in np.unique(group[group > 0]):
            members = np.nonzero(group == g)[0]
            if (len(members) + 1) * self.partial.relative_cost[g] < len(members):
                out[int(g)] = members
        return out
