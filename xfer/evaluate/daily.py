"""Per-day scores whose average over the test days is the headline metric.

Verdicts are drawn from the *test days*, not from a handful of (seed, fold) summaries: the
dominant uncertainty in a comparison is which days happened to be in the test period. Each
function here turns one model's forecasts into one number per test day, higher = better
(except :func:`qlike_day_losses`, a loss), so that

* the mean over days reproduces the familiar metric (R², mean QLIKE, ...), and
* a paired difference of two models' day scores is a time series that
  :func:`xfer.evaluate.inference.paired_day_test` can resample in blocks.

Every scale (the reference variance, the forecast scale, the return scale) is fixed by the
caller from data known *before* the test period, so a day's score never depends on other
test days. That is what keeps a day score's expectation honest: a score normalised by the
test block's own mean or variance (e.g. the within-block Pearson IC) is biased.
"""

from __future__ import annotations

import math

import numpy as np


def _as_1d(x: np.ndarray, name: str, func: str) -> np.ndarray:
    """Float 1-D view of ``x``; a clear error instead of silent broadcasting."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"The '{name}' parameter of {func} must be a 1-D array. Got shape {arr.shape} instead."
        )
    return arr


def _same_length(func: str, **arrays: np.ndarray) -> None:
    """Paired day arrays must line up day by day; broadcasting would hide a misalignment."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        names = " and ".join(f"'{k}'" for k in lengths)
        raise ValueError(
            f"The {names} parameters of {func} must have the same length. Got {lengths} instead."
        )


def _positive_scalar(value: float, name: str, func: str) -> float:
    """A scale must be a finite positive number, else every score is inf or NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan  # an array, None or a string: reported below with the parameter's name
    if isinstance(value, bool | str | bytes) or not (math.isfinite(v) and v > 0):
        raise ValueError(
            f"The '{name}' parameter of {func} must be a finite number > 0. Got {value!r} instead."
        )
    return v


def volatility_day_scores(y: np.ndarray, p: np.ndarray, var_ref: float) -> np.ndarray:
    """Per-day R² contribution ``1 - (y - p)² / var_ref`` (higher = better).

    ``y`` and ``p`` are the log annualised realised-vol label and its forecast. With
    ``var_ref = np.var(y)`` over the same days the mean of these scores is exactly R². For
    inference ``var_ref`` should be fixed (e.g. the label variance over the pooled test days,
    shared by both models being compared) so a paired difference is a pure squared-error
    difference scaled by a constant, and its expectation is not distorted by a random
    denominator.
    """
    func = "volatility_day_scores"
    y_ = _as_1d(y, "y", func)
    p_ = _as_1d(p, "p", func)
    _same_length(func, y=y_, p=p_)
    v = _positive_scalar(var_ref, "var_ref", func)
    return 1.0 - (y_ - p_) ** 2 / v


def qlike_day_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-day QLIKE loss on variances (lower = better; 0 = perfect).

    With ``ratio = exp(2 (y - p))`` = realised variance / forecast variance, the loss is
    ``ratio - log(ratio) - 1``. QLIKE is robust to the noise of a realised-variance proxy
    (Patton 2011), which is why it is reported next to R². Negate it to get a day score.
    """
    func = "qlike_day_losses"
    y_ = _as_1d(y, "y", func)
    p_ = _as_1d(p, "p", func)
    _same_length(func, y=y_, p=p_)
    log_ratio = 2.0 * (y_ - p_)
    return np.exp(log_ratio) - log_ratio - 1.0


def return_day_scores(y: np.ndarray, f: np.ndarray, y_scale: float) -> np.ndarray:
    """Per-day uncentred skill ``f * y / y_scale`` of a return forecast (higher = better).

    ``f`` is the forecast already standardised by a scale fixed before the test period
    (:func:`standardise_forecast`) and ``y_scale`` a fixed scale of the realised return, e.g.
    its training-window standard deviation. Nothing is demeaned over the test block, so for a
    forecast without skill (``f_t`` known at ``t``) and returns that are a zero-mean martingale
    difference, ``E[f_t y_t] = E[f_t E[y_t | past]] = 0`` exactly. The within-block Pearson IC
    is not: demeaning both series by the block means correlates a trailing-return predictor
    with the block's own labels and biases the IC upwards.
    """
    func = "return_day_scores"
    y_ = _as_1d(y, "y", func)
    f_ = _as_1d(f, "f", func)
    _same_length(func, y=y_, f=f_)
    s = _positive_scalar(y_scale, "y_scale", func)
    return f_ * y_ / s


def standardise_forecast(p_test: np.ndarray, p_ref: np.ndarray) -> np.ndarray:
    """``p_test`` divided by the root-mean-square of ``p_ref`` (uncentred; NaN-ignoring).

    ``p_ref`` is the same model's forecast on a window before the test period (e.g. the
    validation rows), so the scale is known ex ante and a forecast's units (a model predicting
    1e-4 vs 1e-2) do not change its score. It is uncentred because centring would need the
    forecast's mean, which is itself a bet on direction. A constant-zero reference forecast has
    no scale and no skill: it yields zeros rather than a division by zero.
    """
    func = "standardise_forecast"
    pt = _as_1d(p_test, "p_test", func)
    pr = _as_1d(p_ref, "p_ref", func)
    finite = pr[np.isfinite(pr)]
    if finite.size == 0:
        raise ValueError(
            f"The 'p_ref' parameter of {func} must contain at least one finite value. "
            f"Got {pr.size} values, none finite, instead."
        )
    peak = float(np.max(np.abs(finite)))
    if peak == 0.0:
        return np.zeros_like(pt)
    # RMS computed on values scaled by their peak, so huge forecasts cannot overflow to inf
    # (which would silently turn every standardised forecast into 0).
    rms = peak * float(np.sqrt(np.mean((finite / peak) ** 2)))
    return pt / rms
