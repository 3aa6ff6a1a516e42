"""Evaluation of multi-label classifiers (e.g. element identification in EELS).

Predictions are datasets with ``probability`` [sample, label] and the ``true`` 0/1 labels
(:func:`specinv.training.predict` of a multi-label model); an ensemble's also hold every
member's ``member_probability`` [member, sample, label] and the ``member_kind``.  A label is
predicted present where its probability exceeds a threshold: a fixed one, or ``balanced``,
the one where the weighted precision equals the weighted recall on the validation spectra
(Annys et al. 2023).  Metrics (per label and overall):

* precision TP / (TP + FP), recall TP / (TP + FN), F1 their harmonic mean, support (number
  of spectra where the label is present); a ratio with a zero denominator is 0, as in
  scikit-learn's ``zero_division=0``;
* weighted precision, recall, F1: the per-label values averaged with the supports as
  weights (the paper's occurrence weighting; F1 then need not lie between the other two);
* exact-match ratio (EMR): share of spectra whose whole label set is predicted right;
* RMSE: root mean square of probability − label over all spectra and labels;
* confusions: how often label j is predicted in place of a missed label i in one spectrum
  (neighbouring lanthanides, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .figures import _pyplot, _save

#: thresholds searched for the balanced one
THRESHOLD_GRID = np.round(np.arange(0.01, 0.995, 0.005), 3)


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


def weighted_scores(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Support-weighted precision, recall and F1 (0 without any positive label)."""
    scores = label_scores(true, predicted)
    total = scores["support"].sum()
    if not total:
        return {"precision": 0.0, "recall": 0.0, "F1": 0.0}
    w = scores["support"] / total
    return {k: float((scores[k] * w).sum()) for k in ("precision", "recall", "F1")}


def weighted_f1(true: np.ndarray, predicted: np.ndarray) -> float:
    """Per-label F1 averaged with the label supports as weights (0 without any positive)."""
    return weighted_scores(true, predicted)["F1"]


def exact_match_ratio(true: np.ndarray, predicted: np.ndarray) -> float:
    """Share of spectra whose predicted label set equals the true one."""
    t, p = np.asarray(true, dtype=bool), np.asarray(predicted, dtype=bool)
    return float(np.all(t == p, axis=1).mean())


def probability_rmse(true: np.ndarray, probability: np.ndarray) -> float:
    """Root mean square of probability − label over every spectrum and label."""
    return float(np.sqrt(np.mean((np.asarray(probability) - np.asarray(true)) ** 2)))


def balanced_threshold(true: np.ndarray, probability: np.ndarray) -> float:
    """The threshold of :data:`THRESHOLD_GRID` where the weighted precision and recall cross.

    Raising the threshold trades recall for precision, until labels are no longer predicted
    at all: their precision then counts as 0 (the weighted scores' convention), so at the
    top of the grid precision and recall both fall to 0 and agree without any balance.
    The crossing is therefore the first threshold from below at which the precision
    reaches the recall, or the one before it if that is closer.  Where the precision never
    reaches the recall, the threshold with the closest pair among those that still
    recall something; of equally close ones, that of the larger weighted F1.
    """
    probability = np.asarray(probability)
    previous = None
    fallback, fallback_key = float(THRESHOLD_GRID[0]), (np.inf, 0.0)
    for threshold in THRESHOLD_GRID:
        s = weighted_scores(true, probability > threshold)
        key = (round(abs(s["precision"] - s["recall"]), 12), -s["F1"])
        if s["precision"] >= s["recall"] and s["recall"] > 0:
            if previous is not None and previous[1] < key:
                return previous[0]
            return float(threshold)
        if s["recall"] > 0 and key < fallback_key:
            fallback, fallback_key = float(threshold), key
        previous = (float(threshold), key)
    return fallback


def resolve_threshold(
    threshold: float | str, validation: xr.Dataset | None, probability: str = "probability"
) -> float:
    """A fixed threshold, or ``balanced``: :func:`balanced_threshold` of the validation
    predictions' ``probability`` variable (ValueError naming what is missing)."""
    if threshold == "balanced":
        if validation is None:
            raise ValueError("evaluation.threshold: balanced needs validation predictions")
        return balanced_threshold(validation["true"].values, validation[probability].values)
    if isinstance(threshold, str) or not 0.0 < float(threshold) < 1.0:
        raise ValueError(
            f"evaluation.threshold: expected a probability in (0, 1) or 'balanced', got "
            f"{threshold!r}"
        )
    return float(threshold)


def predicted_labels(predictions: xr.Dataset, threshold: float = 0.5) -> np.ndarray:
    """0/1 labels [N, L]: probability above ``threshold``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold}")
    return (predictions["probability"].values > threshold).astype(np.int8)


def scores(true: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, float]:
    """The paper's scores at ``threshold``: weighted F1, precision, recall, EMR, RMSE, and
    the micro (pooled) precision and recall."""
    t = np.asarray(true, dtype=bool)
    q = np.asarray(probability) > threshold
    weighted = weighted_scores(t, q)
    return {
        "threshold": threshold,
        "weighted_F1": weighted["F1"],
        "weighted_precision": weighted["precision"],
        "weighted_recall": weighted["recall"],
        "exact_match_ratio": exact_match_ratio(t, q),
        "rmse": probability_rmse(t, probability),
        "micro_precision": float(_ratio((t & q).sum(), q.sum())),
        "micro_recall": float(_ratio((t & q).sum(), t.sum())),
        "spectra": int(t.shape[0]),
    }


def member_groups(predictions: xr.Dataset) -> dict[str, np.ndarray]:
    """Kind -> indices of an ensemble's members of that kind (empty without members)."""
    if "member_kind" not in predictions.coords:
        return {}
    kinds = predictions["member_kind"].values.astype(str)
    return {k: np.flatnonzero(kinds == k) for k in dict.fromkeys(kinds)}


def confusions(
    true: np.ndarray, predicted: np.ndarray, labels: Sequence[str], top: int = 20
) -> pd.DataFrame:
    """The ``top`` pairs (missed label, label predicted instead) by the number of spectra in
    which the first is present but not predicted while the second is predicted but not
    present; with each label's support."""
    t, q = np.asarray(true, dtype=bool), np.asarray(predicted, dtype=bool)
    missed, extra = (t & ~q).astype(np.int64), (q & ~t).astype(np.int64)
    counts = missed.T @ extra  # [missed label, predicted label]
    order = np.argsort(counts, axis=None)[::-1][:top]
    i, j = np.unravel_index(order, counts.shape)
    keep = counts[i, j] > 0
    labels = np.asarray(labels, dtype=str)
    support = t.sum(0)
    return pd.DataFrame(
        {
            "missed": labels[i[keep]],
            "predicted_instead": labels[j[keep]],
            "spectra": counts[i[keep], j[keep]],
            "support_missed": support[i[keep]],
        }
    )


def classification_tables(
    predictions: Mapping[int, xr.Dataset],
    model_size: int,
    threshold: float | str = 0.5,
    validation: Mapping[int, xr.Dataset] | None = None,
) -> dict[str, pd.DataFrame]:
    """The evaluation of multi-label predictions (of every training-set size; ``validation``
    the same networks' predictions on the validation spectra, for a ``balanced``
    threshold, chosen per network or ensemble).

    ``summary``: per training-set size, the pooled model's :func:`scores`; ``models``: at
    ``model_size``, the scores of every kind of an ensemble's members alone (their
    probabilities averaged) and of the whole ensemble, with the prediction time per
    spectrum; ``labels``: per label precision, recall, F1 and support at ``model_size``;
    ``confusions``: its most frequent (missed, predicted instead) pairs."""
    validation = validation or {}
    rows, thresholds = {}, {}
    for n, p in sorted(predictions.items()):
        thresholds[n] = resolve_threshold(threshold, validation.get(n))
        rows[n] = scores(p["true"].values, p["probability"].values, thresholds[n])
    summary = pd.DataFrame.from_dict(rows, orient="index")
    summary.index.name = "n_train"
    best = predictions[model_size]
    names = best["label"].values.astype(str)
    model_rows = {}
    groups = member_groups(best)
    seconds = best["member_seconds"].values if "member_seconds" in best.coords else None
    for kind, members in groups.items():
        if len(groups) == 1:
            break
        prob = best["member_probability"].values[members].mean(0)
        val = validation.get(model_size)
        kind_validation = (
            xr.Dataset(
                {
                    "true": val["true"],
                    "probability": (
                        ("sample", "label"),
                        val["member_probability"].values[members].mean(0),
                    ),
                }
            )
            if val is not None
            else None
        )
        row = scores(best["true"].values, prob, resolve_threshold(threshold, kind_validation))
        row["networks"] = len(members)
        if seconds is not None:
            row["ms_per_spectrum"] = 1e3 * seconds[members].sum() / best.sizes["sample"]
        model_rows[kind] = row
    ensemble = dict(rows[model_size])
    ensemble["networks"] = int(best.attrs.get("ensemble", 1))
    if seconds is not None:
        ensemble["ms_per_spectrum"] = 1e3 * seconds.sum() / best.sizes["sample"]
    model_rows[str(best.attrs.get("model_label", "model"))] = ensemble
    models = pd.DataFrame.from_dict(model_rows, orient="index")
    models.index.name = "model"
    predicted = best["probability"].values > thresholds[model_size]
    labels = label_scores(best["true"].values, predicted)
    labels.index = pd.Index(names, name="label")
    return {
        "labels": labels,
        "summary": summary,
        "models": models,
        "confusions": confusions(best["true"].values, predicted, names),
        "thresholds": thresholds,
    }


def plot_classification(
    predictions: Mapping[int, xr.Dataset],
    model_size: int,
    paths_summary: Sequence[str | Path],
    paths_labels: Sequence[str | Path],
    threshold: float | str = 0.5,
    title: str = "",
    validation: Mapping[int, xr.Dataset] | None = None,
) -> None:
    """Weighted F1 and exact-match ratio against the training-set size; per-label precision,
    recall and F1 of the network trained on ``model_size`` spectra."""
    plt = _pyplot()
    tables = classification_tables(predictions, model_size, threshold, validation)
    threshold = tables["thresholds"][model_size]
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
    if len(lab) > 20:  # many labels (EELS: 80 elements): F1 bars, precision and recall dots
        fig, ax = plt.subplots(figsize=(min(0.17 * len(lab) + 2.0, 16.0), 4.2))
        x = np.arange(len(lab))
        ax.bar(x, lab["F1"], width=0.75, color="0.65", label="F1")
        ax.plot(x, lab["precision"], "v", ms=3.5, label="precision")
        ax.plot(x, lab["recall"], "^", ms=3.5, label="recall")
        ax.set_xticks(x, lab.index, rotation=90, fontsize=7)
        ax.set_xlim(-0.7, len(lab) - 0.3)
        legend_below = -0.2
    else:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(lab) + 2), 4.2))
        x = np.arange(len(lab))
        for i, col in enumerate(("precision", "recall", "F1")):
            ax.bar(x + (i - 1) * 0.27, lab[col], width=0.27, label=col)
        ax.set_xticks(x, lab.index, rotation=45 if len(lab) > 8 else 0)
        legend_below = -0.12 if len(lab) <= 8 else -0.25
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"score (threshold {threshold:g})")
    # below the axes: the bars fill the panel
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, legend_below))
    ax.set_title(f"{title} (trained on {model_size} spectra)".strip())
    _save(fig, paths_labels)


def plot_prediction_examples(
    test: xr.Dataset,
    predictions: xr.Dataset,
    threshold: float,
    paths: Sequence[str | Path],
    axis: tuple[str, str],
    n: int = 6,
    seed: int = 0,
    title: str = "",
) -> None:
    """``n`` test spectra (drawn with ``seed``) with their true labels and the labels
    predicted above ``threshold``, with probabilities (the layout of Annys et al. 2023,
    Fig. 6): right ones black, missed ones grey, wrong ones red.

    ``test``: the raw test split (``counts`` [sample, channel]); ``axis``: (coordinate,
    label) of its channels."""
    plt = _pyplot()
    coordinate, label = axis
    rng = np.random.default_rng(seed)
    picks = np.sort(
        rng.choice(predictions.sizes["sample"], min(n, predictions.sizes["sample"]), replace=False)
    )
    names = predictions["label"].values.astype(str)
    x = test[coordinate].values if coordinate in test.coords else np.arange(test.sizes["channel"])
    cols = 2 if len(picks) > 1 else 1
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 2.6 * rows), squeeze=False)
    for ax, i in zip(axes.ravel(), picks, strict=False):
        counts = test["counts"].values[i].astype(float)
        shown = counts > 0
        ax.plot(x[shown], counts[shown] / max(counts.max(), 1.0), lw=0.8)
        truth = predictions["true"].values[i].astype(bool)
        p = predictions["probability"].values[i]
        lines = []
        for k in np.flatnonzero(truth | (p > threshold)):
            hit, present = p[k] > threshold, truth[k]
            colour = "black" if hit and present else ("0.55" if present else "tab:red")
            lines.append((names[k], f"{names[k]} {p[k]:.2f}", colour))
        for j, (_, text, colour) in enumerate(lines):
            ax.text(
                0.98,
                0.92 - 0.12 * j,
                text,
                color=colour,
                ha="right",
                va="top",
                transform=ax.transAxes,
                fontsize=8,
            )
        ax.set_title(f"test spectrum {int(predictions['sample'].values[i])}", fontsize=8)
        ax.set_xlabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(picks) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{title}: probabilities of the true and the predicted labels (threshold "
        f"{threshold:g}; black right, grey missed, red wrong)".strip(": "),
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, paths)
