"""Fixed-smoothing HAR variances: known answers that fail when an estimator is broken."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from xfer.evaluate import har
from xfer.evaluate.inference import _bartlett_var, paired_day_test


def test_ewc_nu_rule_and_bounds() -> None:
    assert har.ewc_nu(1000, 0.4) == 40  # 0.4 * 1000^(2/3) = 40
    assert har.ewc_nu(1000, 0.1) == 10
    assert har.ewc_nu(3, 0.4) == 2 and har.ewc_nu(2, 0.4) == 1  # at most n - 1


def test_ewc_cosines_are_orthonormal_and_ignore_the_mean() -> None:
    c = har._cosines(200, 12)
    np.testing.assert_allclose(c @ c.T, np.eye(12), atol=1e-10)
    np.testing.assert_allclose(c.sum(axis=1), 0.0, atol=1e-10)  # a constant has no projection
    x = np.random.default_rng(0).standard_normal(200)
    assert har.ewc_lrv(x + 5.0, 12) == pytest.approx(har.ewc_lrv(x, 12), rel=1e-10)


def test_ewc_recovers_the_long_run_variance_of_an_ar1() -> None:
    """AR(1) with phi = 0.5, unit innovations: long-run variance 1 / (1 - phi)^2 = 4. With few
    cosines relative to the dependence the average over many series is close to it."""
    rng = np.random.default_rng(1)
    n, phi, reps = 2000, 0.5, 300
    e = rng.standard_normal((reps, n + 100))
    x = np.zeros_like(e)
    for t in range(1, e.shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    vals = [har.ewc_lrv(row[100:], 16) for row in x]
    assert np.mean(vals) == pytest.approx(4.0, rel=0.08)
    # and nu * lrv / truth is chi-square with nu df: its variance is 2 * nu
    assert np.var(np.array(vals) * 16 / 4.0) == pytest.approx(32.0, rel=0.3)


def test_bartlett_lrv_matches_the_inference_modules_estimator() -> None:
    x = np.random.default_rng(2).standard_normal(300).cumsum() * 0.01 + np.random.default_rng(3).standard_normal(300)
    for w in (1, 5, 40, 300):
        assert har.bartlett_lrv(x, w) / x.size == pytest.approx(float(_bartlett_var(x[None, :], w)[0]), rel=1e-10)


def test_fixed_b_df_matches_kiefer_vogelsang() -> None:
    for b in (0.1, 0.3, 0.5):
        df = har.fixed_b_df(b, corrected=False)
        assert stats.t.ppf(0.975, df) == pytest.approx(har.kv_critical(b), rel=1e-6)
        dfc = har.fixed_b_df(b)
        assert stats.t.ppf(0.975, dfc) == pytest.approx(har.kv_critical(b) * math.sqrt(har.bias_factor(b)), rel=1e-6)
    assert har.fixed_b_df(0.1) > har.fixed_b_df(0.5)  # a longer window is a noisier estimate


def test_satterthwaite_known_answers() -> None:
    assert har.satterthwaite_df([(1.0, 10.0)]) == pytest.approx(10.0)
    # two equal parts with equal df: df doubles
    assert har.satterthwaite_df([(1.0, 10.0), (1.0, 10.0)]) == pytest.approx(20.0)
    assert har.combine_df(1.0, 10.0, 0.0, 3) == pytest.approx(10.0)  # no seed term: the day df
    assert har.combine_df(0.0, 10.0, 1.0, 3) == pytest.approx(2.0)  # only seeds: S - 1


@pytest.mark.parametrize("method", ["ewc", "fixed_b"])
def test_size_on_ma4_days_with_seed_effects(method: str) -> None:
    """MA(4) day noise (5-day labels) shared by 3 seeds plus seed offsets: a true null rejected
    at about 5% (400 replications: 99% acceptance region 2.0%-8.5%)."""
    rng = np.random.default_rng(40)
    hits = 0
    for _ in range(400):
        shared = np.convolve(rng.standard_normal(504), np.ones(5), mode="valid")
        d = shared[None, :] + 0.2 * rng.standard_normal((3, 1)) + rng.standard_normal((3, 500))
        hits += paired_day_test(d, horizon=5, method=method).p_value < 0.05  # type: ignore[arg-type]
    assert 8 <= hits <= 34, hits
