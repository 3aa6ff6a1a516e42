"""Element maps of a spectrum image by a trained network (Annys et al. 2023, Fig. 7).

:func:`layered_spectrum_image` simulates a spectrum image of a layered sample (rows cross
the layers, columns run along them; the row at an interface mixes its two neighbours);
:func:`element_maps` runs a workflow run's network on every pixel and keeps the elements
detected in at least 1 % of the pixels (the paper's selection criterion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...config.errors import ConfigError
from .cli import DEFAULT_CONDITIONS, parse_composition
from .technique import EELSTechnique

#: the paper's demonstration: a LaMnO3 / BaTiO3 / SrTiO3 superlattice, recorded over a range
#: without the Sr edges (400–1000 eV)
SUPERLATTICE = (("SrTiO3", 4), ("BaTiO3", 4), ("LaMnO3", 4), ("BaTiO3", 4), ("SrTiO3", 4))
SUPERLATTICE_CONDITIONS = {"start_eV": 400.0, "end_eV": 1000.0, "log10_background": 4.0}


@dataclass(frozen=True)
class SpectrumImage:
    """Counts [rows, columns, channels], the parameters of every pixel [rows, columns, D],
    and the layer (index into ``layers``) of every row (−1 at an interface)."""

    counts: np.ndarray
    params: np.ndarray
    layers: tuple[tuple[str, int], ...]
    row_layer: np.ndarray


def layered_spectrum_image(
    technique: EELSTechnique,
    layers: Sequence[tuple[str, int]] = SUPERLATTICE,
    columns: int = 6,
    conditions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> SpectrumImage:
    """A spectrum image of ``layers`` ((formula, rows) from the top), ``columns`` pixels
    wide: every pixel the same conditions (``DEFAULT_CONDITIONS`` and
    :data:`SUPERLATTICE_CONDITIONS` under ``conditions``), each layer its own fine
    structure and chemical shifts, Poisson noise of its own; the first row of every layer
    after the first is an interface: half of each neighbour's composition."""
    if columns < 1 or not layers or any(rows < 1 for _, rows in layers):
        raise ConfigError(
            f"layers, columns: expected layers of at least one row and columns >= 1, got "
            f"{list(layers)} and {columns}"
        )
    values = {**DEFAULT_CONDITIONS, **SUPERLATTICE_CONDITIONS, **dict(conditions or {})}
    names = technique.parameter_names
    compositions = [parse_composition(f, f"layers[{i}]") for i, (f, _) in enumerate(layers)]
    rows, row_layer = [], []
    for i, (_, n_rows) in enumerate(layers):
        for r in range(n_rows):
            p = np.zeros(len(names))
            for name, value in values.items():
                p[names.index(name)] = value
            p[names.index("seed")] = seed * 1000 + i
            mix = {k: 0.5 * v for k, v in compositions[i].items()}
            interface = r == 0 and i > 0
            if interface:
                for k, v in compositions[i - 1].items():
                    mix[k] = mix.get(k, 0.0) + 0.5 * v
            for k, v in (mix if interface else compositions[i]).items():
                p[names.index(f"amount_{k}")] = v
            rows.append(p)
            row_layer.append(-1 if interface else i)
    params = np.repeat(np.asarray(rows)[:, None, :], columns, axis=1)
    expected = technique.simulate(params.reshape(-1, len(names))).numpy()
    rng = np.random.default_rng(seed)
    counts = rng.poisson(expected).reshape(len(rows), columns, -1)
    return SpectrumImage(counts, params, tuple(layers), np.asarray(row_layer))


@dataclass(frozen=True)
class ElementMaps:
    """Probabilities [rows, columns, elements] of the detected elements, their symbols and
    the threshold they were detected with."""

    probability: np.ndarray
    elements: list[str]
    threshold: float


def element_maps(
    probability: np.ndarray,
    labels: Sequence[str],
    threshold: float,
    min_share: float = 0.01,
) -> ElementMaps:
    """The elements whose probability exceeds ``threshold`` in at least ``min_share`` of
    the pixels (``probability`` [rows, columns, labels])."""
    share = (probability > threshold).mean(axis=(0, 1))
    keep = np.flatnonzero(share >= min_share)
    return ElementMaps(probability[..., keep], [labels[k] for k in keep], threshold)
