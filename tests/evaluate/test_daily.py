"""Known answers for the per-day scores, and the small-sample bias they exist to avoid."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import r2_score  # type: ignore[import-untyped]

from xfer.evaluate.daily import (
    qlike_day_losses,
    return_day_scores,
    standardise_forecast,
    volatility_day_scores,
)

# ---------------------------------------------------------------------------------------------
# volatility_day_scores
# ---------------------------------------------------------------------------------------------


def test_volatility_day_scores_hand_computed() -> None:
    # squared errors 0, 1, 1 over var_ref 2
    out = volatility_day_scores(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0]), 2.0)
    np.testing.assert_allclose(out, [1.0, 0.5, 0.5], rtol=0, atol=1e-15)


def test_volatility_day_scores_mean_is_sklearn_r2() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=57)
    p = y + rng.normal(scale=0.7, size=57)
    scores = volatility_day_scores(y, p, float(np.var(y)))
    assert scores.mean() == pytest.approx(r2_score(y, p), rel=1e-12)


def test_volatility_day_scores_perfect_forecast_scores_one_and_nan_propagates() -> None:
    y = np.array([0.1, -0.3, np.nan])
    out = volatility_day_scores(y, np.array([0.1, -0.3, 0.2]), 0.5)
    np.testing.assert_array_equal(out[:2], [1.0, 1.0])
    assert math.isnan(out[2]), "a missing label must give a missing (NaN) day, not a number"


# ---------------------------------------------------------------------------------------------
# qlike_day_losses
# ---------------------------------------------------------------------------------------------


def test_qlike_is_zero_at_the_truth_and_hand_computed_elsewhere() -> None:
    y = np.array([-1.3, 0.0, 2.5])
    np.testing.assert_array_equal(qlike_day_losses(y, y), [0.0, 0.0, 0.0])
    # y - p = +0.5: ratio e, loss e - 1 - 1; y - p = -0.5: ratio 1/e, loss 1/e + 1 - 1
    out = qlike_day_losses(np.array([0.5, 0.0]), np.array([0.0, 0.5]))
    np.testing.assert_allclose(out, [math.e - 2.0, math.exp(-1.0)], rtol=1e-14)


def test_qlike_is_nonnegative_and_asymmetric() -> None:
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=200), rng.normal(size=200)
    loss = qlike_day_losses(y, p)
    assert (loss >= 0).all()
    # under-forecasting variance (p < y) costs more than over-forecasting by the same amount
    assert (
        qlike_day_losses(np.array([1.0]), np.array([0.0]))[0]
        > qlike_day_losses(np.array([0.0]), np.array([1.0]))[0]
    )


# ---------------------------------------------------------------------------------------------
# return_day_scores and standardise_forecast
# ---------------------------------------------------------------------------------------------


def test_return_day_scores_exact_values() -> None:
    out = return_day_scores(np.array([1.0, -2.0, 0.5]), np.array([2.0, 1.0, -4.0]), 2.0)
    np.testing.assert_array_equal(out, [1.0, -1.0, -1.0])


def test_standardise_forecast_divides_by_uncentred_rms_ignoring_nan() -> None:
    # RMS of [3, 4] is sqrt(12.5) (uncentred: the mean 3.5 is NOT subtracted)
    out = standardise_forecast(np.array([1.0, -2.0, np.nan]), np.array([3.0, np.nan, 4.0]))
    np.testing.assert_allclose(out[:2], np.array([1.0, -2.0]) / math.sqrt(12.5), rtol=1e-15)
    assert math.isnan(out[2])
    ref = np.random.default_rng(2).normal(size=100) * 1e-4
    z = standardise_forecast(ref, ref)
    assert np.sqrt(np.mean(z**2)) == pytest.approx(1.0, rel=1e-12), "ref maps to unit RMS"


def test_standardise_forecast_is_unit_free_and_overflow_safe() -> None:
    rng = np.random.default_rng(3)
    ref, test = rng.normal(size=50), rng.normal(size=20)
    base = standardise_forecast(test, ref)
    for unit in (1e-6, 1e-2, 1e3):
        np.testing.assert_allclose(standardise_forecast(test * unit, ref * unit), base, rtol=1e-12)
    # squaring 1e200 overflows; the scaled RMS must not (it used to give inf -> all zeros)
    np.testing.assert_allclose(
        standardise_forecast(np.array([1e200]), np.array([1e200, -1e200])), [1.0], rtol=1e-12
    )


def test_standardise_forecast_zero_reference_gives_zeros() -> None:
    out = standardise_forecast(np.array([0.3, -1.0, 2.0]), np.array([0.0, 0.0, np.nan]))
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])
    assert out.dtype == np.float64 and out.shape == (3,)


def test_standardise_forecast_needs_a_finite_reference() -> None:
    with pytest.raises(ValueError, match=r"'p_ref' parameter of standardise_forecast.*finite"):
        standardise_forecast(np.array([1.0]), np.array([np.nan, np.inf]))


# ---------------------------------------------------------------------------------------------
# Argument errors name the parameter
# ---------------------------------------------------------------------------------------------

_ONE = np.array([1.0, 2.0])


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (
            lambda: volatility_day_scores(np.ones((2, 2)), _ONE, 1.0),
            r"'y' parameter of volatility_day_scores must be a 1-D array. Got shape \(2, 2\)",
        ),
        (
            lambda: volatility_day_scores(_ONE, np.float64(1.0), 1.0),  # type: ignore[arg-type]
            r"'p' parameter of volatility_day_scores must be a 1-D array",
        ),
        (lambda: qlike_day_losses(_ONE, np.ones((1, 2))), r"'p' parameter of qlike_day_losses"),
        (lambda: return_day_scores(_ONE, np.ones((2, 1)), 1.0), r"'f' parameter of return_day"),
        (lambda: standardise_forecast(np.ones((2, 2)), _ONE), r"'p_test' parameter of standard"),
        (lambda: standardise_forecast(_ONE, np.ones((2, 2))), r"'p_ref' parameter of standard"),
        (
            lambda: volatility_day_scores(_ONE, np.ones(3), 1.0),
            r"'y' and 'p' parameters of volatility_day_scores must have the same length",
        ),
        (lambda: qlike_day_losses(np.ones(3), _ONE), r"'y' and 'p' parameters of qlike_day"),
        (lambda: return_day_scores(_ONE, np.ones(3), 1.0), r"'y' and 'f' parameters of return"),
    ],
)
def test_shape_errors_name_the_parameter(call: Callable[[], object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, None, "1", np.ones(2), True])
def test_scales_must_be_finite_positive_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match=r"'var_ref' parameter of volatility_day_scores must be"):
        volatility_day_scores(_ONE, _ONE, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'y_scale' parameter of return_day_scores must be"):
        return_day_scores(_ONE, _ONE, bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The bias the uncentred day score fixes (Stambaugh-type small-sample bias of the block IC)
# ---------------------------------------------------------------------------------------------


def test_block_pearson_ic_is_biased_but_uncentred_day_score_is_not() -> None:
    """i.i.d. N(0,1) returns: no predictor can have skill, so every honest score has mean 0.

    The predictor is ``f_t = -(r_{t-59} + ... + r_t)`` (overlapping 60-day sums, persistent),
    the label the next-day return ``y_t = r_{t+1}``. Within a 250-day block, demeaning both
    series by the block means correlates the predictor's innovation with the block's own
    labels (Stambaugh 1999), so the block Pearson IC has a positive mean. The uncentred day
    score with scales fixed on the preceding 250 days has expectation exactly 0.
    """
    n_blocks, block, look, warm = 2000, 250, 60, 250
    rng = np.random.default_rng(20240607)
    r = rng.standard_normal((n_blocks, warm + look + block + 1))
    csum = np.concatenate([np.zeros((n_blocks, 1)), np.cumsum(r, axis=1)], axis=1)
    t_all = np.arange(look - 1, warm + look + block)  # every t with a full 60-day window
    f_all = -(csum[:, t_all + 1] - csum[:, t_all + 1 - look])  # -(r_{t-59} + ... + r_t)
    y_all = r[:, t_all + 1]  # next-day return
    f_ref, f = f_all[:, :warm], f_all[:, warm : warm + block]
    y_ref, y = y_all[:, :warm], y_all[:, warm : warm + block]

    fc = f - f.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    ic = (fc * yc).sum(axis=1) / np.sqrt((fc**2).sum(axis=1) * (yc**2).sum(axis=1))
    ic_mean, ic_se = ic.mean(), ic.std(ddof=1) / math.sqrt(n_blocks)

    day = np.array(
        [
            return_day_scores(
                y[i], standardise_forecast(f[i], f_ref[i]), float(np.std(y_ref[i]))
            ).mean()
            for i in range(n_blocks)
        ]
    )
    day_mean, day_se = day.mean(), day.std(ddof=1) / math.sqrt(n_blocks)

    # control: the same day score after demeaning over the test block inherits the bias, so
    # the check below can fail; it is the block centring, not the day scoring, that matters
    demeaned = np.array(
        [
            return_day_scores(
                yc[i], standardise_forecast(fc[i], f_ref[i]), float(np.std(y_ref[i]))
            ).mean()
            for i in range(n_blocks)
        ]
    )
    dm_mean, dm_se = demeaned.mean(), demeaned.std(ddof=1) / math.sqrt(n_blocks)

    assert dm_mean > 3 * dm_se, f"block-demeaned day score: {dm_mean:+.5f} (se {dm_se:.5f})"
    assert ic_mean > 3 * ic_se, (
        f"block Pearson IC should be biased up: mean {ic_mean:+.4f}, se {ic_se:.4f}, "
        f"z {ic_mean / ic_se:+.1f} (the issue measured about +0.046)"
    )
    assert abs(day_mean) < 3 * day_se, (
        f"uncentred day score should be unbiased: mean {day_mean:+.5f}, se {day_se:.5f}, "
        f"z {day_mean / day_se:+.2f} (IC mean was {ic_mean:+.4f})"
    )


def test_skill_split_constant_long_forecast_earns_only_bias() -> None:
    """A constant long forecast in a drifting market: all its skill is bias x drift, none timing;
    its bias is exactly mean(f) * mean(y) / scale with f = 1 (unit RMS)."""
    from xfer.evaluate.scores import day_scores, skill_split

    rng = np.random.default_rng(3)
    y = 0.001 + 0.01 * rng.standard_normal(5000)
    pred, ref = np.full(y.size, 0.3), np.full(50, 0.3)
    split = skill_split(y, pred, 0.01, ref)
    assert split["skill_bias"] == pytest.approx(y.mean() / 0.01, rel=1e-12)
    assert split["skill_timing"] == pytest.approx(0.0, abs=1e-12)
    total = day_scores("return", y, pred, 0.01, ref).mean()
    assert split["skill_bias"] + split["skill_timing"] == pytest.approx(total, rel=1e-12)


def test_skill_split_pure_timing_forecast_has_no_bias_on_driftless_block() -> None:
    """A long-biased forecast that knows the demeaned return, on a block with zero drift: bias 0,
    all timing; on a drifting block its bias is mean(f) * drift and its timing is unchanged."""
    from xfer.evaluate.scores import skill_split

    rng = np.random.default_rng(4)
    e = rng.standard_normal(4000)
    e -= e.mean()
    ref = rng.standard_normal(200)
    pred = e + 0.2
    split0 = skill_split(e, pred, 1.0, ref)
    assert split0["skill_bias"] == pytest.approx(0.0, abs=1e-12)
    rms = math.sqrt(np.mean(ref**2))
    assert split0["skill_timing"] == pytest.approx(np.mean(e * e) / rms, rel=1e-10)
    split1 = skill_split(e + 0.5, pred, 1.0, ref)  # same forecast, the block drifts up by 0.5
    assert split1["skill_bias"] == pytest.approx(0.2 / rms * 0.5, rel=1e-10)
    assert split1["skill_timing"] == pytest.approx(split0["skill_timing"], rel=1e-10)
