"""Expected counts and their derivatives from any batched forward model, by central
differences: for the uncertainties of fitted values (Fisher information)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def spectra_and_jacobian(
    simulate: Callable[[torch.Tensor], torch.Tensor],
    params: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    *,
    dtype: torch.dtype = torch.float64,
    relative_step: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra [N, C] at ``params`` [N, D] and their derivatives [N, C, D].

    Central differences (one-sided where a step would leave [low, high]) with steps of
    ``relative_step`` of each value, or of 1e-3 of its range for values near 0; all
    N·(2D + 1) spectra in one call of ``simulate`` (a model taking [K, D] parameters).
    """
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    n, d = params.shape
    h = relative_step * np.maximum(np.abs(params), 1e-3 * (high - low))
    up = np.minimum(params + h, high)
    down = np.maximum(params - h, low)
    points = np.repeat(params[:, None, :], 2 * d + 1, axis=1)  # [N, 2D+1, D]
    idx = np.arange(d)
    points[:, 1 + idx, idx] = up
    points[:, 1 + d + idx, idx] = down
    with torch.no_grad():
        spectra = simulate(torch.as_tensor(points.reshape(-1, d), dtype=dtype))
    spectra = spectra.cpu().numpy().reshape(n, 2 * d + 1, -1)
    jac = (spectra[:, 1 : 1 + d] - spectra[:, 1 + d :]) / (up - down)[:, :, None]
    return spectra[:, 0], np.transpose(jac, (0, 2, 1))
