"""Multi-label scores against hand-computed values, the balanced threshold, confusions and
the per-kind scores of a mixed ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from specinv.evaluation.classification import (
    balanced_threshold,
    classification_tables,
    confusions,
    probability_rmse,
    resolve_threshold,
    scores,
    weighted_scores,
)

TRUE = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
PRED = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]])


def test_weighted_scores_by_hand():
    # label 0: TP 2, FP 0, FN 0 -> P 1, R 1; label 1: TP 1, FN 1 -> P 1, R 0.5, F1 2/3;
    # label 2: TP 0, FP 1, FN 1 -> 0; supports 2, 2, 1
    s = weighted_scores(TRUE, PRED)
    assert s["precision"] == pytest.approx((2 * 1 + 2 * 1 + 0) / 5)
    assert s["recall"] == pytest.approx((2 * 1 + 2 * 0.5 + 0) / 5)
    assert s["F1"] == pytest.approx((2 * 1 + 2 * 2 / 3) / 5)
    assert probability_rmse(TRUE, TRUE.astype(float)) == 0.0
    assert probability_rmse(TRUE, np.full(TRUE.shape, 0.5)) == pytest.approx(0.5)


def test_scores_and_exact_match():
    s = scores(TRUE, PRED * 0.9 + 0.05, threshold=0.5)
    assert s["exact_match_ratio"] == pytest.approx(0.5)  # spectra 0 and 2
    assert s["micro_precision"] == pytest.approx(3 / 4)
    assert s["micro_recall"] == pytest.approx(3 / 5)


def test_the_balanced_threshold_equalises_precision_and_recall():
    rng = np.random.default_rng(0)
    true = (rng.random((2000, 6)) < 0.3).astype(int)
    # noisy scores: raising the threshold trades recall for precision
    probability = np.clip(0.35 * true + rng.normal(0.3, 0.15, true.shape), 0, 1)
    t = balanced_threshold(true, probability)
    s = weighted_scores(true, probability > t)
    assert abs(s["precision"] - s["recall"]) < 0.02
    low = weighted_scores(true, probability > t - 0.1)
    assert low["recall"] > s["recall"] and low["precision"] < s["precision"]
    validation = xr.Dataset(
        {"true": (("sample", "label"), true), "probability": (("sample", "label"), probability)}
    )
    assert resolve_threshold("balanced", validation) == t
    assert resolve_threshold(0.7, None) == 0.7
    with pytest.raises(ValueError, match="balanced needs validation predictions"):
        resolve_threshold("balanced", None)
    with pytest.raises(ValueError, match="expected a probability in"):
        resolve_threshold(1.5, None)


def test_the_balanced_threshold_is_not_where_nothing_is_predicted():
    """A weak model whose probabilities stay below 0.5: above that nothing is predicted,
    precision and recall are both 0 there, and agree without any balance."""
    rng = np.random.default_rng(1)
    true = (rng.random((2000, 6)) < 0.3).astype(int)
    probability = np.clip(0.1 * true + rng.normal(0.2, 0.08, true.shape), 0.0, 0.5)
    t = balanced_threshold(true, probability)
    assert t < 0.5
    s = weighted_scores(true, probability > t)
    assert s["recall"] > 0.2 and abs(s["precision"] - s["recall"]) < 0.03
    # a model that predicts nothing at any threshold: the lowest one
    assert balanced_threshold(true, np.zeros(true.shape)) == pytest.approx(0.01)


def test_confusions_pair_a_missed_label_with_one_predicted_instead():
    true = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    pred = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 1]])
    table = confusions(true, pred, ["La", "Ce", "Pr"])
    assert table.iloc[0].to_dict() == {
        "missed": "La",
        "predicted_instead": "Ce",
        "spectra": 2,
        "support_missed": 2,
    }
    assert len(table) == 1  # Pr is a false positive, but nothing was missed beside it


def _predictions(rng, true, members):
    p = np.stack([np.clip(true + rng.normal(0, s, true.shape), 0, 1) for s in members])
    return xr.Dataset(
        {
            "probability": (("sample", "label"), p.mean(0)),
            "member_probability": (("member", "sample", "label"), p),
            "true": (("sample", "label"), true),
        },
        coords={
            "label": ["B", "C", "N"],
            "member_kind": ("member", ["vit", "unet", "unet"]),
            "member_seconds": ("member", [1.0, 2.0, 2.0]),
        },
        attrs={"ensemble": 3, "model_label": "ViT + U-Net"},
    )


def test_the_tables_score_each_kind_of_an_ensemble_and_the_whole():
    rng = np.random.default_rng(1)
    true = (rng.random((400, 3)) < 0.4).astype(int)
    # the ViT is sharp, the U-Nets noisy
    test = _predictions(rng, true, [0.1, 0.45, 0.45])
    validation = _predictions(rng, true, [0.1, 0.45, 0.45])
    tables = classification_tables({400: test}, 400, "balanced", {400: validation})
    models = tables["models"]
    assert list(models.index) == ["vit", "unet", "ViT + U-Net"]
    assert list(models["networks"]) == [1, 2, 3]
    assert models.loc["vit", "weighted_F1"] > models.loc["unet", "weighted_F1"]
    assert models.loc["ViT + U-Net", "ms_per_spectrum"] == pytest.approx(1e3 * 5.0 / 400)
    assert 0 < tables["thresholds"][400] < 1
    assert list(tables["labels"].index) == ["B", "C", "N"]
