"""Metrics and tables against hand computations and closed forms."""

from __future__ import annotations

from pathlib import Path

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


def _fit(method, chi2, estimate, true, samples, dof=50, params=("a", "b")):
    return xr.Dataset(
        {
            "estimate": (("sample", "param"), estimate),
            "true": (("sample", "param"), true),
            "chi2": ("sample", chi2),
            "n_simulations": ("sample", np.full(len(chi2), 7)),
        },
        coords={"sample": samples, "param": list(params)},
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


def test_signed_relative_errors_are_the_relative_errors_with_their_sign():
    from specinv.evaluation import signed_relative_error

    est, true = np.array([[0.0, 1.0, -2.0, 9.0]]), np.array([[0.0, 0.0, 1.0, -10.0]])
    assert signed_relative_error(est, true).tolist() == [[0.0, np.inf, -3.0, 1.9]]
    np.testing.assert_allclose(np.abs(signed_relative_error(est, true)), relative_error(est, true))
    assert signed_relative_error(np.array([[-1.0]]), np.array([[0.0]]))[0, 0] == -np.inf


def _predictions(estimate, true, names=("a", "b")):
    return xr.Dataset(
        {
            "mean": (("sample", "param"), estimate),
            "std": (("sample", "param"), np.full_like(estimate, np.nan)),
            "true": (("sample", "param"), true),
        },
        coords={"sample": np.arange(len(true)), "param": list(names)},
        attrs={"model_label": "CNN"},
    )


def test_accuracy_against_the_training_size_by_hand():
    from specinv.evaluation.accuracy_figures import accuracy_vs_training_size

    true = np.array([[1.0, 2.0], [1.0, 0.0], [1.0, 5.0], [1.0, 4.0]])
    small = np.array([[1.5, 2.3], [0.85, 0.1], [1.0999, 5.1], [0.5, 4.0]])
    large = np.array([[1.05, 2.1], [0.95, 0.0], [1.0999, 5.1], [0.5, 4.0]])

    def derived(e, t):
        return {"sum": (e.sum(1) - t.sum(1)) / t.sum(1)}

    table = accuracy_vs_training_size(
        {200: _predictions(large, true), 100: _predictions(small, true)}, derived
    )
    assert list(table.index) == [100, 200] and table.index.name == "n_train"
    assert list(table.columns) == ["a", "b", "sum"]
    # a: 50 %, 15 %, 9.99 %, 50 % -> 1/4; then 5 %, 5 %, 9.99 %, 50 % -> 3/4
    assert table["a"].tolist() == [0.25, 0.75]
    # b: 15 %, true 0 estimated 0.1 (infinite), 2 %, 0 -> 2/4; then 5 %, exact 0, 2 %, 0
    assert table["b"].tolist() == [0.5, 1.0]
    for n, est in ((100, small), (200, large)):
        assert table.loc[n, "sum"] == np.mean(np.abs(derived(est, true)["sum"]) < 0.1)


def _synthetic(n=400, seed=0):
    """Predictions of 2 shown and 3 summarised parameters (one true zero among them)."""
    rng = np.random.default_rng(seed)
    names = ["thick", "width", "w1", "w2", "w3"]
    true = rng.uniform(1.0, 10.0, (n, 5))
    true[0, 2] = 0.0
    est = true * (1 + 0.08 * rng.standard_normal((n, 5)))
    return names, est, true


def _derived(e, t):
    return {"total": (e.sum(1) - t.sum(1)) / t.sum(1), "rms": np.sqrt(((e - t) ** 2).mean(1))}


def test_accuracy_figures_are_written(tmp_path):
    from specinv.evaluation.accuracy_figures import (
        accuracy_vs_training_size,
        parameter_groups,
        plot_accuracy_vs_training_size,
        plot_predicted_vs_true,
    )

    names, est, true = _synthetic()
    predictions = {
        n: _predictions(true + (est - true) * k, true, names)
        for n, k in ((100, 3.0), (1000, 1.5), (10_000, 1.0))
    }
    table = accuracy_vs_training_size(predictions, _derived)
    assert (table.diff().iloc[1:] >= 0).all().all()  # smaller errors, higher accuracy
    shown, others = parameter_groups(names, ["width", "thick"])
    assert shown == ["width", "thick"] and others == ["w1", "w2", "w3"]
    with pytest.raises(ValueError, match="'depth' not among the parameters"):
        parameter_groups(names, ["thick", "depth"])
    paths = [tmp_path / "acc.png", tmp_path / "acc.pdf"]
    plot_accuracy_vs_training_size(table, shown, ["total", "rms"], paths, title="run: CNN")
    paths += [tmp_path / "pvt.png", tmp_path / "pvt.pdf"]
    plot_predicted_vs_true(
        est,
        true,
        names,
        ["nm", "deg", "%", "%", "%"],
        shown,
        paths[2:],
        _derived,
        title="run: CNN",
        max_points=100,
    )
    # one training size only, every parameter shown, more than the panels: still drawn
    paths += [tmp_path / "one.png", tmp_path / "many.png"]
    plot_accuracy_vs_training_size(table.iloc[-1:], names, [], paths[4:5])
    plot_predicted_vs_true(est, true, names, ["1"] * 5, names, paths[5:], max_panels=3)
    for path in paths:
        assert path.stat().st_size > 5_000, path


def test_profile_examples_are_the_lowest_median_and_highest_errors(tmp_path):
    from specinv.evaluation.accuracy_figures import (
        example_indices,
        plot_profile_examples,
        profile_examples,
    )
    from specinv.evaluation.metrics import profile_errors

    assert example_indices(np.array([0.3, 0.1, 0.2, 0.5, 0.4])) == [1, 0, 3]
    assert example_indices(np.array([0.3, 0.1])) == [1, 0]
    assert example_indices(np.array([0.3])) == [0]
    # constant profiles 1 and 3 over the same depths: rms 2 over max |true| = 3
    depths = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert profile_errors(depths, np.ones((1, 4)), depths, np.full((1, 4), 3.0)) == (
        pytest.approx([2 / 3])
    )
    # a ramp 0 -> 1 over depth 1, against the same ramp over depth 2 (both 0 below): the
    # rms difference over [0, 2] of z - z/2 on [0, 1], 1 - z/2 on [1, 2] is 1/sqrt(12)
    ramp = np.linspace(0.0, 1.0, 201)[None]
    err = profile_errors(np.linspace(0, 1, 201)[None], ramp, 2 * np.linspace(0, 1, 201)[None], ramp)
    assert err == pytest.approx([1 / np.sqrt(12)], rel=1e-3)

    fractions = (np.arange(50) + 0.5) / 50

    def depth_profiles(params):  # amplitude, thickness -> a half sine over the thickness
        return fractions * params[:, 1:2], params[:, :1] * np.sin(np.pi * fractions)

    channels = np.linspace(-1, 1, 80)

    def simulate(params):
        return 10.0 ** (params[:, :1] * np.exp(-(channels**2) / 0.1) + 1.0)

    samples = np.arange(10, 17)
    true = np.column_stack([np.linspace(1, 3, 7), np.full(7, 100.0)])
    scale = np.array([1.2, 1.01, 0.9, 1.5, 1.05, 0.98, 1.3])  # amplitude errors
    network = _fit("cnn", np.ones(7), true * np.column_stack([scale, np.ones(7)]), true, samples)
    refined = _fit("cnn_refine", np.ones(5), true[1:6], true[1:6], samples[1:6])
    test = xr.Dataset(
        {"counts": (("sample", "channel"), np.rint(simulate(true)).astype(np.int32))},
        coords={"sample": samples},
    )
    examples = profile_examples(
        {"CNN": network, "CNN + refinement": refined}, test, depth_profiles, simulate
    )
    # the refined spectra only (samples 11 … 15): errors 0.01, 0.1, 0.5, 0.05, 0.02
    assert [e.sample for e in examples] == [11, 14, 13]
    assert [e.caption.split()[0] for e in examples] == ["lowest", "median", "highest"]
    # rms of 0.5 sin over max 1: 0.5/sqrt(2) (to 1 %: 50 samples of each profile, linearly
    # interpolated and held at their ends)
    assert examples[2].errors["CNN"] == pytest.approx(0.5 * np.sqrt(0.5), rel=1e-2)
    assert examples[2].errors["CNN + refinement"] == 0.0
    np.testing.assert_allclose(examples[0].true_profile[0], fractions * 100)
    np.testing.assert_allclose(examples[2].curves["CNN + refinement"], simulate(true[3:4])[0])
    assert examples[1].observed.tolist() == test["counts"].sel(sample=14).values.tolist()
    paths = [tmp_path / "profiles.png", tmp_path / "profiles.pdf"]
    plot_profile_examples(
        examples,
        channels,
        paths,
        "angle (deg)",
        "depth (nm)",
        "strain (%)",
        log_y=True,
        title="run",
    )
    assert all(p.stat().st_size > 5_000 for p in paths)


def test_the_workflow_accuracy_figures_ask_the_technique(tmp_path):
    """The glue: an XRD technique's shown parameters, units and derived quantities; its
    profiles; and an error for a technique without profiles."""
    import yaml

    from specinv.data import dataset_config
    from specinv.evaluation.accuracy_figures import accuracy_figures, profile_figure

    tests = Path(__file__).resolve().parent / "data"
    config = yaml.safe_load((tests / "tiny_xrd.yaml").read_text())
    xrd = dataset_config(config).technique_instance
    rng = np.random.default_rng(3)
    true = xrd.sample(rng.random((60, xrd.n_uniforms)))
    est = true * (1 + 0.05 * rng.standard_normal(true.shape))
    predictions = {n: _predictions(est, true, xrd.parameter_names) for n in (30, 60)}
    outputs = {
        n: [tmp_path / f"{n}.png", tmp_path / f"{n}.pdf"]
        for n in ("accuracy_vs_training_size", "predicted_vs_true", "profile_examples")
    }
    accuracy_figures(predictions, 60, xrd, outputs, name="tiny_xrd")
    samples = np.arange(60)
    names = xrd.parameter_names
    fits = {
        "CNN60": _fit("cnn", np.ones(60), est, true, samples, params=names),
        "CNN60 + gradient refinement": _fit(
            "cnn_refine", np.ones(4), true[:4], true[:4], samples[:4], params=names
        ),
    }
    counts = xrd.simulate(torch.as_tensor(true[:4])).numpy()
    axis = xrd.axis()
    test = xr.Dataset(
        {"counts": (("sample", "channel"), np.rint(counts).astype(np.int32))},
        coords={"sample": samples[:4], axis.coordinate: ("channel", axis.values)},
    )

    def simulate(params):
        return xrd.simulate(torch.as_tensor(params)).numpy()

    profile_figure(fits, test, xrd, simulate, outputs["profile_examples"], name="tiny_xrd")
    for paths in outputs.values():
        assert all(p.stat().st_size > 5_000 for p in paths), paths
    rbs = dataset_config(yaml.safe_load((tests / "tiny.yaml").read_text())).technique_instance
    with pytest.raises(ValueError, match="technique 'rbs' has no depth profiles"):
        profile_figure(fits, test, rbs, simulate, [])
