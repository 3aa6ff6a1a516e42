"""Losses of multi-label classification (one logit per label, labels not exclusive).

Annys, Jannis & Verbeeck 2023 (core-loss EELS element identification) train their networks
on the sum of the binary cross-entropy and a macro soft-F1 loss: the cross-entropy scores
every label of every spectrum alone, the soft F1 the balance of false positives and false
negatives of each label over the batch (it does not let a rare label be "never present").
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812


def soft_f1_loss(probability: torch.Tensor, target: torch.Tensor, eps: float = 1e-7):
    """The macro soft-F1 loss, 1 − mean over labels of each label's soft F1 over the batch.

    With p the predicted probabilities and y the targets (0 or 1) of one label over the
    batch, the soft counts are TP = Σ p·y, FP = Σ p·(1 − y), FN = Σ (1 − p)·y and the
    label's soft F1 = 2 TP / (2 TP + FP + FN + eps) (the F1 score where p is 0 or 1).

    A label absent from the batch (all y = 0) has TP = 0, so its F1 is 0 whatever is
    predicted and its gradient 0: it adds 1/n_labels to the loss, which is then 0 only
    for confident, correct predictions of a batch in which every label occurs (the
    cross-entropy of :func:`bce_soft_f1_loss` is what pushes such a label's p to 0).

    Args:
        probability: predicted probabilities [B, n_labels] in [0, 1].
        target: 1 where the label is present, else 0 [B, n_labels] (any float dtype).
        eps: keeps the ratio finite (and its gradient) when a label has no counts.

    Returns:
        the loss, a scalar in [0, 1].
    """
    y = target.to(probability.dtype)
    tp = (probability * y).sum(0)
    fp = (probability * (1 - y)).sum(0)
    fn = ((1 - probability) * y).sum(0)
    f1 = 2 * tp / (2 * tp + fp + fn + eps)
    return 1 - f1.mean()


def bce_soft_f1_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of Annys et al. 2023: the binary cross-entropy (mean over labels and
    spectra) plus the macro soft-F1 loss of the probabilities σ(logits).

    Args:
        logits: the network's outputs [B, n_labels].
        target: 1 where the label is present, else 0 [B, n_labels].
    """
    y = target.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, y) + soft_f1_loss(torch.sigmoid(logits), y)


__all__ = ["bce_soft_f1_loss", "soft_f1_loss"]
