"""Pooled effects across targets (:mod:`xfer.evaluate.pooled`): known answers and coverage.

The generator plants everything: ``K`` targets whose true effects are ``mu + tau * N(0, 1)``,
measured over the same ``n`` calendar days with MA(h-1) day noise (overlapping h-day labels)
that is partly common to all targets (a market-wide day moves every target's score). The
oracle is the planted ``mu``, and for the prediction interval a fresh target's planted effect.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from xfer.evaluate.pooled import pooled_effect

H = 5


def _ma(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Unit-variance MA(H-1) noise, (n, k): the day scores of overlapping H-day labels."""
    e = rng.normal(size=(n + H - 1, k))
    return np.stack([e[i:i + n] for i in range(H)]).mean(axis=0) * np.sqrt(H)


def _study(rng: np.random.Generator, *, k: int = 20, n: int = 500, mu: float = 0.02, tau: float = 0.02,
           rho: float = 0.3, sd: float = 0.3, ragged: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    noise = sd * (np.sqrt(rho) * _ma(rng, n, 1) + np.sqrt(1 - rho) * _ma(rng, n, k))
    theta = mu + tau * rng.normal(size=k)
    x = theta + noise
    if ragged:  # targets with shorter histories start later
        for j in range(k):
            x[: rng.integers(0, n // 2), j] = np.nan
    return pd.DataFrame(x, index=pd.bdate_range("2010-01-04", periods=n)), theta


def _coverage(reps: int, *, seed: int = 7, **kw: float | bool) -> tuple[float, float, float]:
    """Shares of replications whose interval covers mu, whose prediction interval covers a new
    target's effect, and whose verdict is not inconclusive."""
    rng = np.random.default_rng(seed)
    mu, tau = float(kw.get("mu", 0.02)), float(kw.get("tau", 0.02))
    ci = pi = called = 0
    for _ in range(reps):
        d, _ = _study(rng, **kw)  # type: ignore[arg-type]
        r = pooled_effect(d, horizon=H)
        ci += r.ci_low <= mu <= r.ci_high
        new = mu + tau * rng.normal()
        pi += r.pi_low <= new <= r.pi_high
        called += r.verdict != "inconclusive"
    return ci / reps, pi / reps, called / reps


def test_planted_effects_without_day_noise_are_recovered_exactly() -> None:
    theta = np.array([0.1, -0.05, 0.2, 0.0, 0.07])
    d = pd.DataFrame(np.tile(theta, (300, 1)))
    r = pooled_effect(d)
    assert r.estimate == pytest.approx(theta.mean(), abs=1e-12)
    assert r.tau2 == pytest.approx(theta.var(ddof=1), rel=1e-9)
    assert r.noise_var == pytest.approx(0.0, abs=1e-15)
    assert r.df == pytest.approx(len(theta) - 1)


def test_day_noise_shared_by_targets_is_not_averaged_away() -> None:
    """One common day series and nothing else: the targets agree perfectly, so the spread says
    tau2 = 0, and the whole uncertainty is the common series' (it does not shrink with K)."""
    rng = np.random.default_rng(0)
    common = 0.3 * _ma(rng, 800, 1)
    d = pd.DataFrame(np.tile(common, (1, 12)) + 0.01)
    one = pooled_effect(d.iloc[:, :3], horizon=H)
    many = pooled_effect(d, horizon=H)
    assert many.tau2 == pytest.approx(0.0, abs=1e-12)
    assert many.noise_var == pytest.approx(one.noise_var, rel=1e-9)


@pytest.mark.slow
def test_interval_covers_the_planted_mean_at_nominal_under_common_day_noise() -> None:
    ci, pi, _ = _coverage(400)
    assert 0.93 <= ci <= 0.98, ci
    assert 0.91 <= pi <= 0.98, pi


@pytest.mark.parametrize("kw", [{"tau": 0.0, "rho": 0.6}, {"tau": 0.05, "rho": 0.0}, {"ragged": True},
                                {"k": 8}], ids=["noise-only", "heterogeneity-only", "ragged", "8-targets"])
def test_coverage_holds_across_designs(kw: dict[str, float | bool]) -> None:
    ci, _, _ = _coverage(300, seed=11, **kw)
    assert 0.92 <= ci <= 0.985, ci


@pytest.mark.parametrize("kw", [{"tau": 0.0, "rho": 0.6}, {"tau": 0.0, "rho": 0.9, "k": 19}, {"tau": 0.05, "rho": 0.0}],
                         ids=["noise-only", "common-noise-19", "heterogeneity-only"])
def test_prediction_interval_is_never_narrower_than_the_interval_of_the_mean(kw: dict[str, float]) -> None:
    """A new target's effect is mu plus its own deviation: its interval contains the mean's.
    With tau2 estimated at 0 and day noise of few df, a K - 2 reference alone broke this (the
    wider universe's pooled table showed [-0.118, +0.575] around a [-0.025, +0.482] prediction)."""
    rng = np.random.default_rng(21)
    for _ in range(60):
        r = pooled_effect(_study(rng, **kw)[0], horizon=H)  # type: ignore[arg-type]
        assert r.pi_low <= r.ci_low + 1e-12 and r.ci_high <= r.pi_high + 1e-12, r


@pytest.mark.slow
def test_a_true_null_is_called_at_its_nominal_rate() -> None:
    _, _, called = _coverage(400, mu=0.0, tau=0.0, seed=3)
    assert called <= 0.08, called  # 5% nominal; 400 draws: 0.08 is ~2.8 s.e. above


@pytest.mark.slow
def test_the_estimator_that_assumes_independent_targets_fails_this_suite() -> None:
    """The suite can fail: a textbook random-effects meta-analysis (DerSimonian-Laird, each
    target's own HAC variance, targets independent) on the same studies covers far below
    nominal, because a market-wide day is counted K times as K independent pieces of evidence."""
    from statsmodels.stats.meta_analysis import combine_effects

    from xfer.evaluate.inference import _bartlett_var

    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(200):
        d, _ = _study(rng)
        w = pooled_effect(d, horizon=H).window
        var = np.array([_bartlett_var(d[c].to_numpy()[None, :], w)[0] for c in d])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lo, hi = combine_effects(d.mean().to_numpy(), var, method_re="chi2").conf_int()[1]
        hits += lo <= 0.02 <= hi
    assert hits / 200 < 0.8, hits / 200


def test_between_target_variance_is_estimated_without_large_bias() -> None:
    rng = np.random.default_rng(5)
    est = [pooled_effect(_study(rng, tau=0.06)[0], horizon=H).tau2 for _ in range(200)]
    assert np.mean(est) == pytest.approx(0.06**2, rel=0.2)


def test_a_large_pooled_effect_is_called() -> None:
    _, _, called = _coverage(100, mu=0.1, tau=0.02, seed=9)
    assert called >= 0.9, called


@pytest.mark.parametrize(("d", "kw", "phrase"), [
    (pd.DataFrame(np.zeros((10, 2))), {}, "at least 3 targets"),
    (pd.DataFrame(np.r_[np.zeros((1, 3)), np.full((9, 3), np.inf)]), {}, "finite or NaN"),
    (pd.DataFrame(np.r_[np.zeros((1, 3)), np.full((9, 3), np.nan)]), {}, "at least 2 days"),
    (pd.DataFrame(np.zeros((10, 3))), {"horizon": 0}, "'horizon'"),
    (pd.DataFrame(np.zeros((10, 3))), {"level": 1.0}, "'level'"),
    (pd.DataFrame(np.zeros((10, 3))), {"window": 0}, "'window'"),
    (np.zeros((10, 3)), {}, "a DataFrame"),
])
def test_bad_arguments_are_refused_with_the_parameter_named(d: object, kw: dict, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        pooled_effect(d, **kw)  # type: ignore[arg-type]
