"""Evaluation of inverse-model predictions and fits: accuracy, goodness of fit, coverage."""

from .metrics import (
    PERCENTILES,
    acceptance_rate,
    chi2_profile,
    chi2_statistic,
    chi2_threshold,
    coverage_scores,
    ideal_chi2_profile,
    interval_coverage,
    median_relative_error,
    relative_error,
    roi_mask,
    signed_relative_error,
)

__all__ = [
    "PERCENTILES",
    "acceptance_rate",
    "chi2_profile",
    "chi2_statistic",
    "chi2_threshold",
    "coverage_scores",
    "ideal_chi2_profile",
    "interval_coverage",
    "median_relative_error",
    "relative_error",
    "roi_mask",
    "signed_relative_error",
]
