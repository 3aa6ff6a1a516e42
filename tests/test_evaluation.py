"""Metrics and tables against hand computations and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import stats

from specinv.evaluation import (
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
)
from specinv.evaluation.tables import (
    chi2_profile_table,
    coverage_table,
    methods_on_fitted_spectra,
    methods_table,
    paper_tables,
)


def test_chi2_by_hand():
    observed = np.array([[0, 3, 10, 4]])
    expected = np.array([[1.0, 2.0, 12.0, 4.0]])
    # (0-1)²/1 + (3-2)²/4 + (10-12)²/11 + 0
    assert chi2_statistic(observed, expected)[0] == pytest.approx(1 + 0.25 + 4 / 11)
    roi = np.array([False, True, True, False])
    assert chi2_statistic(observed, expected, roi)[0] == pytest.approx(0.25 + 4 / 11)
    # the torch version agrees and carries gradients
    e = torch.tensor(expected, requires_grad=True)
    value = chi2_statistic(observed, e, roi)
    value.sum().backward()
    assert value.item() == pytest.approx(0.25 + 4 / 11)
    # d/ds (x-s)²/(x+1) = -2(x-s)/(x+1)
    assert e.grad[0].tolist() == pytest.approx([0, -2 / 4, 4 / 11, 0])


def test_ideal_profile_is_the_papers():
    # Table 2 of the paper: chi2 with nu = 700
    row = ideal_chi2_profile(700)
    paper = [640, 652, 674, 699, 725, 748, 763, 700, 37]
    ours = [row[k] for k in ("p5", "p10", "p25", "p50", "p75", "p90", "p95", "mean", "std")]
    assert np.allclose(ours, paper, atol=0.7)
    assert chi2_threshold(700) == pytest.approx(stats.chi2(700).ppf(0.95))


def test_profile_and_acceptance():
    values = np.arange(1, 101, dtype=float)
    prof = chi2_profile(values)
    assert prof["p50"] == pytest.approx(50.5) and prof["mean"] == pytest.approx(50.5)
    assert prof["std"] == pytest.approx(values.std())
    threshold = chi2_threshold(50)  # ≈ 67.5
    assert acceptance_rate(values, 50) == pytest.approx(np.floor(threshold) / 100)
    with pytest.raises(ValueError, match="finite"):
        chi2_profile(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="alpha"):
        chi2_threshold(10, alpha=1.5)


def test_coverage_scores_by_hand():
    est = np.array([[10.0, 5.0], [10.0, 5.0]])
    std = np.array([[2.0, 1.0], [0.5, 0.0]])
    true = np.array([[11.0, 5.0], [13.0, 5.0]])
    gamma = coverage_scores(est, std, true)
    # (2-1)/(2+1); (1-0)/(1+0); (0.5-3)/(0.5+3); 0/0 -> 0
    np.testing.assert_allclose(gamma, [[1 / 3, 1.0], [-2.5 / 3.5, 0.0]])
    assert interval_coverage(est, std, true, 1).tolist() == [0.5, 1.0]
    assert interval_coverage(est, std, true, 2).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="uncertainty"):
        coverage_scores(est, -std, true)


def test_calibrated_gaussian_gives_acs_in_the_papers_range():
    rng = np.random.default_rng(1)
    true = rng.uniform(100, 1000, (20000, 1))
    sigma = 0.05 * true
    est = true + sigma * rng.standard_normal(true.shape)
    acs = coverage_scores(est, sigma, true).mean()
    assert -0.32 <= acs <= 0.68
    assert interval_coverage(est, sigma, true, 1)[0] == pytest.approx(0.6827, abs=0.01)
    assert interval_coverage(est, sigma, true, 2)[0] == pytest.approx(0.9545, abs=0.01)


def test_relative_errors():
    est, true = np.array([[11.0, 90.0], [10.0, 100.0]]), np.array([[10.0, 100.0]] * 2)
    np.testing.assert_allclose(relative_error(est, true), [[0.1, 0.1], [0.0, 0.0]])
    assert median_relative_error(est, true).tolist() == pytest.approx([0.05, 0.05])
    with pytest.raises(ValueError, match="shape"):
        relative_error(est, true[:1])


def test_roi_mask_covers_the_kept_bins():
    mask = roi_mask(20, first_channel=4, merge=3, kept_bins=np.array([0, 2]))
    assert np.nonzero(mask)[0].tolist() == [4, 5, 6, 10, 11, 12]
    with pytest.raises(ValueError, match="kept_bins"):
        roi_mask(10, 4, 3, np.array([5]))


def _fit(method, chi2, estimate, true, samples, dof=50):
    return xr.Dataset(
        {
            "estimate": (("sample", "param"), estimate),
            "true": (("sample", "param"), true),
            "chi2": ("sample", chi2),
            "n_simulations": ("sample", np.full(len(chi2), 7)),
        },
        coords={"sample": samples, "param": ["a", "b"]},
        attrs={"method": method, "dof": dof, "wall_seconds": 3.0},
    )


def test_tables():
    true = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    fit = _fit("autofit", np.array([40.0, 50.0, 90.0]), true * 1.1, true, [0, 1, 2])
    table = chi2_profile_table({"Autofit": fit})
    assert table.loc["Autofit", "acceptance"] == pytest.approx(2 / 3)  # 90 > 67.5
    assert table.loc["ideal chi2 (nu=50)", "mean"] == 50
    methods = methods_table({"Autofit": fit, "other": fit})
    assert methods.loc["Autofit", "MRE a"] == pytest.approx(0.1)
    assert methods.loc["Autofit", "simulations_per_spectrum"] == 7
    with pytest.raises(ValueError, match="same test spectra"):
        methods_table({"Autofit": fit, "other": fit.isel(sample=[0, 1])})
    pred = xr.Dataset(
        {
            "mean": (("sample", "param"), true * 1.1),
            "std": (("sample", "param"), true * 0.2),
            "true": (("sample", "param"), true),
        },
        coords={"param": ["a", "b"]},
    )
    cov = coverage_table(pred)
    assert cov.loc["a", "coverage_1sigma"] == 1.0
    assert cov.loc["a", "ACS"] == pytest.approx((0.2 - 0.1) / (0.2 + 0.1))


def test_runtime_table_sums_jobs_and_compares_with_the_paper(tmp_path):
    from specinv.evaluation.tables import runtime_table

    files = []
    for k, seconds in enumerate((1800.0, 1800.0, 720.0)):
        f = tmp_path / f"job{k}.tsv"
        f.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:30:00\t100\n")
        files.append(f)
    table = runtime_table(
        {"simulation": files[:2], "autofit fits": files[2:]}, "test CPU", {"simulation": 0.5}
    )
    assert table.loc["simulation", "jobs"] == 2
    assert table.loc["simulation", "hours"] == pytest.approx(1.0)
    assert table.loc["simulation", "ours_over_paper"] == pytest.approx(2.0)
    assert np.isnan(table.loc["autofit fits", "paper_hours"])
    assert (table["hardware"] == "test CPU").all()
    other = runtime_table({"simulation": files[:1]}, "x", {"training (n=50000)": 0.75})
    assert other.loc["training (n=50000)", "paper_hours"] == 0.75
    assert np.isnan(other.loc["training (n=50000)", "hours"])


def test_autofit_on_fewer_spectra_is_compared_on_the_shared_ones():
    """fitting.autofit_spectra: the comparison rows share the Autofit's spectra (wall time
    NaN where a fit is cut down), and the other methods also appear on all of theirs."""
    from specinv.fitting.runner import FitSettings, fitted_spectra

    settings = FitSettings(spectra=4, autofit_spectra=2, shards=2)
    assert settings.n_spectra(10) == 4 and settings.n_spectra(10, "autofit") == 2
    assert settings.shard_range(1, 10, "autofit") == (1, 2)
    test = xr.Dataset({"x": ("sample", np.arange(10))}, coords={"sample": np.arange(10)})
    assert fitted_spectra(test, settings, method="autofit")["sample"].values.tolist() == [0, 1]
    with pytest.raises(ValueError, match="autofit_spectra"):
        FitSettings.from_config({"fitting": {"autofit_spectra": -1}})

    true = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0], [70.0, 80.0]])
    chi2 = np.array([40.0, 50.0, 90.0, 45.0])
    fits = {
        "autofit": _fit("autofit", chi2[:2], true[:2] * 1.1, true[:2], [0, 1]),
        "mdn_refine": _fit("mdn_refine", chi2, true * 1.2, true, [0, 1, 2, 3]),
    }
    mdn = _fit("mdn", chi2 + 1, true * 1.3, true, [0, 1, 2, 3])
    same = methods_on_fitted_spectra(mdn, fits, 100)
    assert {k: v.sizes["sample"] for k, v in same.items()} == {
        "MDN100": 2,
        "Autofit": 2,
        "MDN100 + gradient refinement": 2,
    }
    table = paper_tables(
        {
            100: xr.Dataset(
                {
                    "mean": (("sample", "param"), true),
                    "std": (("sample", "param"), true * 0.1),
                    "true": (("sample", "param"), true),
                },
                coords={"param": ["a", "b"]},
            )
        },
        {100: mdn},
        fits,
        100,
    )["methods"]
    assert table.loc["Autofit", "spectra"] == 2
    assert table.loc["Autofit", "wall_seconds"] == 3.0
    assert np.isnan(table.loc["MDN100 + gradient refinement", "wall_seconds"])
    full = table.loc["MDN100 + gradient refinement (all 4)"]
    assert full["spectra"] == 4 and full["wall_seconds"] == 3.0
    assert full["acceptance"] == pytest.approx(3 / 4)  # 90 > the 95 % point of chi2(50)
    assert table.loc["MDN100 + gradient refinement", "MRE a"] == pytest.approx(0.2)


def test_accuracy_is_the_share_within_ten_percent():
    from specinv.evaluation.tables import accuracy_table

    true = np.array([[1.0, 2.0], [1.0, 0.0], [1.0, 5.0], [1.0, 4.0]])
    est = np.array([[1.05, 2.3], [0.85, 0.0], [1.0999, 5.1], [0.5, 4.0]])
    ds = xr.Dataset(
        {"estimate": (("sample", "param"), est), "true": (("sample", "param"), true)},
        coords={"sample": np.arange(4), "param": ["a", "b"]},
    )

    def derived(e, t):
        return {"sum": (e.sum(1) - t.sum(1)) / t.sum(1)}

    table = accuracy_table({"net": ds}, derived)
    assert table.loc["net", "a(a)"] == 0.5  # 5 %, 15 %, 9.99 %, 50 %
    assert table.loc["net", "a(b)"] == 0.75  # 15 %, exact 0, 2 %, 0 %
    sums = np.abs(derived(est, true)["sum"]) < 0.1
    assert table.loc["net", "a(sum)"] == sums.mean()
    assert table.loc["net", "spectra"] == 4


def test_relative_errors_of_true_zeros():
    from specinv.evaluation.metrics import relative_error

    err = relative_error(np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 0.0, 1.0]]))
    assert err.tolist() == [[0.0, np.inf, 1.0]]
