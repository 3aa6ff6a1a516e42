"""Evaluation of multi-label classifiers (e.g. element identification in EELS).

Predictions are datasets with ``probability`` [sample, label] and the ``true`` 0/1 labels
(:func:`specinv.training.predict` of a ``classifier``).  A label is predicted present where
its probability exceeds a threshold.  Metrics (per label and overall):

* precision TP / (TP + FP), recall TP / (TP + FN), F1 their harmonic mean, support (number
  of spectra where the label is present); a ratio with a zero denominator is 0, as in
  scikit-learn's ``zero_division=0``;
* weighted F1: the per-label F1 averaged with the supports as weights;
* exact-match ratio (EMR): share of spectra whose whole label set is predicted right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .figures import _pyplot, _save


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def label_scores(true: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Precision, recall, F1 and support of every label ([N, L] 0/1 arrays)."""
    t, p = np.asarray(true, dtype=bool), np.asarray(predicted, dtype=bool)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(
            f"true, predicted: expected two [spectra, labels] arrays of one "
            f"shape, got {t.shape} and {p.shape}"
        )
    tp = (t & p).sum(0)
    precision, recall = _ratio(tp, p.sum(0)), _ratio(tp, t.sum(0))
    return pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "F1": _ratio(2 * precision * recall, precision + recall),
            "support": t.sum(0),
        }
    )


def weighted_f1(true: np.ndarray, predicted: np.ndarray) -> float:
    """Per-label F1 averaged with the label supports as weights (0 without any positive)."""
    scores = label_scores(true, predicted)
    total = scores["support"].sum()
    return float((scores["F1"] * scores["support"]).sum() / total) if total else 0.0


def exact_match_ratio(true: np.ndarray, predicted: np.ndarray) -> float:
    """Share of spectra whose predicted label set equals the true one."""
    t, p = np.asarray(true, dtype=bool), np.asarray(predicted, dtype=bool)
    return float(np.all(t == p, axis=1).mean())


def predicted_labels(predictions: xr.Dataset, threshold: float = 0.5) -> np.ndarray:
    """0/1 labels [N, L]: probability above ``threshold``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold}")
    return (predictions["probability"].values > threshold).astype(np.int8)


def classification_tables(
    predictions: Mapping[int, xr.Dataset], model_size: int, threshold: float = 0.5
) -> dict[str, pd.DataFrame]:
    """``labels``: per label precision, recall, F1, support of the network trained on
    ``model_size`` spectra; ``summary``: per training-set size weighted F1, exact-match
    ratio, micro precision and recall."""
    rows = {}
    for n, p in sorted(predictions.items()):
        true, pred = p["true"].values, predicted_labels(p, threshold)
        t, q = true.astype(bool), pred.astype(bool)
        rows[n] = {
            "weighted_F1": weighted_f1(true, pred),
            "exact_match_ratio": exact_match_ratio(true, pred),
            "micro_precision": float(_ratio((t & q).sum(), q.sum())),
            "micro_recall": float(_ratio((t & q).sum(), t.sum())),
            "spectra": p.sizes["sample"],
        }
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "n_train"
    best = predictions[model_size]
    labels = label_scores(best["true"].values, predicted_labels(best, threshold))
    labels.index = pd.Index(best["label"].values.astype(str), name="label")
    return {"labels": labels, "summary": summary}


def plot_classification(
    predictions: Mapping[int, xr.Dataset],
    model_size: int,
    paths_summary: Sequence[str | Path],
    paths_labels: Sequence[str | Path],
    threshold: float = 0.5,
    title: str = "",
) -> None:
    """Weighted F1 and exact-match ratio against the training-set size; per-label precision,
    recall and F1 of the network trained on ``model_size`` spectra."""
    plt = _pyplot()
    tables = classification_tables(predictions, model_size, threshold)
    s = tables["summary"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(s.index, s["weighted_F1"], "o-", label="weighted F1")
    ax.plot(s.index, s["exact_match_ratio"], "s-", label="exact-match ratio")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training spectra")
    ax.set_ylabel("score on the test spectra")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)
    _save(fig, paths_summary)
    lab = tables["labels"]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(lab) + 2), 4.2))
    x = np.arange(len(lab))
    for i, col in enumerate(("precision", "recall", "F1")):
        ax.bar(x + (i - 1) * 0.27, lab[col], width=0.27, label=col)
    ax.set_xticks(x, lab.index, rotation=45 if len(lab) > 8 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"score (threshold {threshold:g})")
    # below the axes: the bars fill the panel
    ax.legend(
        fontsize=8,
        ncol=3,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 if len(lab) <= 8 else -0.25),
    )
    ax.set_title(f"{title} (trained on {model_size} spectra)".strip())
    _save(fig, paths_labels)
