"""Reference posteriors: emcee's ensembles run in lock step (identical to running each
alone), the Poisson likelihood, and posteriors with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import gammaincinv

from specinv.evaluation.posterior import posterior_table, rank_uniformity_pvalue
from specinv.fitting.posterior import (
    QUANTILES,
    default_walkers,
    initial_walkers,
    poisson_log_likelihood,
    posterior_summary,
    run_ensembles_in_lock_step,
)

MU = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -1.0, 2.0]])
SD = np.array([0.5, 1.0, 2.0])


def gaussian(positions: np.ndarray) -> np.ndarray:
    """log N(MU[s], diag SD²) of positions [S, n, D] (one mean per problem)."""
    return -0.5 * (((positions - MU[:, None, :]) / SD) ** 2).sum(axis=-1)


def start(n_walkers: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return MU[:, None, :] + 0.1 * rng.standard_normal((len(MU), n_walkers, MU.shape[1]))


def test_lock_step_runs_are_those_of_emcee_alone():
    """Each ensemble draws exactly what emcee gives for the same problem and seed when run
    by itself: the lock step changes when the log-posterior is evaluated, not what."""
    import emcee

    initial = start()
    runs = run_ensembles_in_lock_step(
        gaussian, initial, 200, seeds=[5, 6, 7], burn=50, thin=3, progress=False
    )
    for i, run in enumerate(runs):
        alone = emcee.EnsembleSampler(
            8, 3, lambda x, i=i: gaussian(np.broadcast_to(x, (3, *x.shape)))[i], vectorize=True
        )
        alone.random_state = np.random.RandomState(5 + i).get_state()
        alone.run_mcmc(initial[i], 200)
        np.testing.assert_array_equal(run.draws, alone.get_chain(discard=50, thin=3, flat=True))
        assert run.draws.shape == (len(range(52, 200, 3)) * 8, 3)
        assert 0.2 < run.acceptance < 0.9


def test_gaussian_posteriors_are_recovered():
    runs = run_ensembles_in_lock_step(
        gaussian, start(), 2500, seeds=[1, 2, 3], burn=500, progress=False
    )
    for mu, run in zip(MU, runs, strict=True):
        summary = posterior_summary(run.draws, true=mu)
        # ~ 16 000 draws, autocorrelation ~ 40 steps: ~ 400 effective draws
        assert (np.abs(summary["mean"] - mu) < 0.25 * SD).all(), summary["mean"]
        np.testing.assert_allclose(summary["std"], SD, rtol=0.2)
        assert (np.abs(summary["quantiles"][2] - mu) < 0.25 * SD).all()  # the median
        assert summary["quantiles"].shape == (len(QUANTILES), 3)
        assert (np.abs(summary["rank"] - 0.5) < 0.15).all()  # the truth is the centre
        assert np.all(run.autocorr_steps > 1) and np.all(run.autocorr_steps < 200)


def test_a_poisson_rate_with_a_flat_prior_has_a_gamma_posterior():
    """Counts k_i ~ Poisson(θ a_i) and a flat prior on θ: the posterior is Gamma(Σk + 1,
    rate Σa), whose mean and quantiles are known."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 2.0, size=30)
    counts = rng.poisson(4.0 * a)
    shape, rate = counts.sum() + 1.0, a.sum()

    def log_prob(positions):
        theta = positions[..., 0]
        inside = (theta > 0) & (theta < 50)
        expected = np.where(inside, theta, 1.0)[..., None] * a
        ll = poisson_log_likelihood(expected, counts)
        return np.where(inside, ll, -np.inf)

    initial = 4.0 + 0.1 * rng.standard_normal((2, 4, 1))
    runs = run_ensembles_in_lock_step(log_prob, initial, 4000, seeds=[0, 1], burn=500)
    draws = np.concatenate([r.draws[:, 0] for r in runs])
    assert draws.mean() == pytest.approx(shape / rate, rel=0.02)
    assert draws.std() == pytest.approx(np.sqrt(shape) / rate, rel=0.1)
    for q in (0.16, 0.84):
        assert np.quantile(draws, q) == pytest.approx(gammaincinv(shape, q) / rate, rel=0.03)


def test_the_poisson_log_likelihood():
    expected = np.array([[2.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    counts = np.array([3.0, 0.0, 0.0])
    ll = poisson_log_likelihood(expected, counts)
    from scipy.stats import poisson

    assert ll[0] == pytest.approx(poisson.logpmf(3, 2.0) + poisson.logpmf(0, 0.5) + 0.0)
    assert ll[1] == pytest.approx(poisson.logpmf([3, 0, 0], 1.0).sum())
    assert poisson_log_likelihood(np.array([0.0]), np.array([1.0])) == -np.inf


def test_an_error_in_one_evaluation_stops_every_ensemble():
    calls = {"n": 0}

    def failing(positions):
        calls["n"] += 1
        if calls["n"] == 4:
            raise FloatingPointError("simulator failed")
        return gaussian(positions)

    with pytest.raises(FloatingPointError, match="simulator failed"):
        run_ensembles_in_lock_step(failing, start(), 50, seeds=[0, 1, 2], progress=False)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="even number >= 6"):
        run_ensembles_in_lock_step(gaussian, start(4), 10, seeds=[0, 1, 2], progress=False)
    with pytest.raises(ValueError, match="burn < steps"):
        run_ensembles_in_lock_step(gaussian, start(), 10, seeds=[0, 1, 2], burn=10)
    with pytest.raises(ValueError, match="seeds: expected 3"):
        run_ensembles_in_lock_step(gaussian, start(), 10, seeds=[0])
    assert default_walkers(15) == 32


def test_initial_walkers_stay_in_the_prior_box():
    low, high = np.zeros(3), np.array([10.0, 10.0, 10.0])
    w = initial_walkers(
        np.array([0.01, 5.0, 12.0]), np.array([1.0, np.inf, 0.5]), low, high, 200, seed=[0, 4]
    )
    assert w.shape == (200, 3)
    assert (w >= low).all() and (w <= high).all()
    assert w[:, 1].std() > 1.5  # an undetermined parameter: a quarter of the range
    # a centre outside the box is clipped to its edge (10): the walkers lie just below it
    assert (w[:, 2] > 8).all() and 9 < w[:, 2].mean() < 10
    again = initial_walkers(
        np.array([0.01, 5.0, 12.0]), np.array([1.0, np.inf, 0.5]), low, high, 200, seed=[0, 4]
    )
    np.testing.assert_array_equal(w, again)


def test_the_posterior_table_compares_methods_with_the_posterior():
    """A posterior that is the truth's own Gaussian: its coverage is nominal; a network
    with the right mean but half the uncertainty covers less and says so."""
    rng = np.random.default_rng(0)
    n, d, draws = 400, 2, 400
    true = rng.uniform(10, 20, size=(n, d))
    sd = np.full((n, d), 1.0)
    centre = true + sd * rng.standard_normal((n, d))  # the posterior is centred off the truth
    samples = centre[:, None, :] + sd[:, None, :] * rng.standard_normal((n, draws, d))
    summaries = [posterior_summary(s, t) for s, t in zip(samples, true, strict=True)]
    coords = {"sample": np.arange(n), "param": ["a", "b"], "quantile": list(QUANTILES)}
    posterior = xr.Dataset(
        {
            "estimate": (("sample", "param"), np.stack([m["mean"] for m in summaries])),
            "std": (("sample", "param"), np.stack([m["std"] for m in summaries])),
            "quantiles": (
                ("sample", "quantile", "param"),
                np.stack([m["quantiles"] for m in summaries]),
            ),
            "rank": (("sample", "param"), np.stack([m["rank"] for m in summaries])),
            "draws": (("sample", "draw", "param"), samples),
            "true": (("sample", "param"), true),
            "autocorr_steps": ("sample", np.ones(n)),
        },
        coords=coords,
        attrs={"walkers": 4, "thin": 1},
    )
    network = xr.Dataset(
        {
            "estimate": (("sample", "param"), centre),
            "std": (("sample", "param"), 0.5 * sd),
            "true": (("sample", "param"), true),
        },
        coords={"sample": np.arange(n), "param": ["a", "b"]},
    )
    table = posterior_table(posterior, {"MDN": network}, network="MDN")
    assert list(table.index) == ["a", "b"]
    np.testing.assert_allclose(table["coverage 1σ posterior"], 0.68, atol=0.06)
    np.testing.assert_allclose(table["coverage 2σ posterior"], 0.95, atol=0.03)
    np.testing.assert_allclose(table["coverage 1σ MDN"], 0.38, atol=0.06)
    np.testing.assert_allclose(table["MDN std / posterior std"], 0.5, rtol=0.05)
    assert (table["|MDN − posterior mean| / posterior std"] < 0.2).all()
    assert (table["rank KS p-value"] > 0.001).all()
    np.testing.assert_allclose(table["MRE posterior mean"], table["MRE MDN"], rtol=0.05)
    assert table["effective draws (median)"].iloc[0] == pytest.approx(draws)
    # ranks piled at one end are not uniform
    assert rank_uniformity_pvalue(np.full((100, 1), 0.99))[0] < 1e-6
