"""Pooled effects across target markets: does transfer to *this kind* of market work?

One target's verdict is about that market's test days. The article's questions are about a
kind of market ("equities -> commodities", "a stock from the rest of its sector"), so a study
over many targets needs one estimate for the kind: the mean effect ``mu`` of a population of
targets, how much targets differ (``tau2``), and where a *new* target's effect would fall.

The model: target ``k``'s measured effect (mean over its test days of the seed-averaged paired
day-score difference, transfer minus scratch) is ``y_k = mu + u_k + e_k``, with ``u_k`` the
target's own true deviation (variance ``tau2``) and ``e_k`` its measurement noise.

Why not DerSimonian-Laird or REML as in a textbook meta-analysis (statsmodels'
``combine_effects``): they take the ``e_k`` to be independent. Targets measured over the same
calendar days are not: a market-wide day moves every target's score difference at once, so the
noise of the targets' average does not shrink like ``1 / K``. Ignoring that, the interval of
``mu`` is too narrow whenever day noise matters (``tests/evaluate/test_pooled.py`` measures
it). Here the day noise is taken from the days themselves:

* every day's contribution to the targets' average is ``z_t = sum_k (d_kt - y_k) / (K n_k)``
  (targets may have different test days; a missing day contributes 0), so the noise variance of
  the average, ``c = Var(mean_k e_k)``, is the Bartlett long-run variance of the sum of ``z``:
  one series, with every cross-target and serial correlation inside it;
* the per-target noise variances ``V_kk`` come from the same formula, one target at a time;
* the spread of the ``y_k`` holds ``tau2`` plus the part of the noise that differs between
  targets, ``(sum_k V_kk - K c) / (K - 1)``: a moment estimator subtracts it
  (floored at 0, the usual truncation);
* the equal-weighted mean ``ybar`` estimates ``mu`` with variance ``tau2 / K + c``, and the
  interval uses Student's t with ``K - 1`` degrees of freedom (the between-target spread is
  estimated from ``K`` numbers); the prediction interval for a new target adds ``tau2`` and
  uses ``K - 2`` degrees of freedom for that part (Higgins, Thompson & Spiegelhalter 2009),
  combined with the day noise's by Welch-Satterthwaite as for the interval; it is never
  narrower than the interval of ``mu``.

Equal weights (rather than inverse-variance ones) keep the estimand "the average target", not
"the targets measured most precisely": targets with similar test lengths differ little in
precision, and equal weights keep the correlated-noise algebra exact.

The Bartlett window is in days; the default is the one :mod:`xfer.evaluate.inference` uses
for a single target (two mean block lengths of the average series, at least twice the label
horizon).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from xfer.evaluate import har
from xfer.evaluate.inference import _HAC_WINDOW_PER_BLOCK, _bad, _pw_block_length

__all__ = ["FIXED_B", "PooledEffect", "pooled_effect"]

FIXED_B = 0.2
"""Default Bartlett window as a share of the test days (at least two mean block lengths).
Chosen by the Monte Carlo of ``tests/evaluate/test_pooled.py`` (20 targets x 500 days,
common-factor MA(4) day noise, 400 replications; ``_study`` there with ``pooled_effect(d,
horizon=5, window=w)``): windows of 0.1 and 0.2 of the days covered the planted mean 93.8-95.3%
and 95.8-96.3% of the time across three designs; two block lengths alone (about 0.05 here)
91.8-93.3%. At 0.2 (``_coverage`` there): 95.0% with heterogeneity,
96.3% noise only, 93.0% heterogeneity only, 96.0% ragged histories, 95.7% with 8 targets; on a
true null (no effect, no heterogeneity) 1.75% false verdicts at 5% (the truncated tau2 makes
the interval a little conservative there)."""


@dataclass(frozen=True)
class PooledEffect:
    """Result of :func:`pooled_effect` (in the units of the day scores)."""

    estimate: float
    """Equal-weighted mean of the targets' effects: the estimate of ``mu``."""
    ci_low: float
    ci_high: float
    se: float
    """Standard error of ``estimate`` (``sqrt(tau2 / K + noise_var)``)."""
    p_value: float
    """Two-sided p-value of H0: mu = 0 (Student's t, ``K - 1`` df: no resampling floor)."""
    tau2: float
    """Between-target variance of the true effects (moment estimate, floored at 0)."""
    pi_low: float
    """Prediction interval for the effect of a new target of the same kind."""
    pi_high: float
    noise_var: float
    """Variance of the targets' average that comes from the test days (``c`` above)."""
    n_targets: int
    window: int
    """Bartlett window (days) used for the day-noise variances."""
    df: float
    """Degrees of freedom of the interval's and the p-value's Student t (Welch-Satterthwaite)."""
    verdict: str
    """``positive`` | ``negative`` | ``inconclusive`` at the given level, unadjusted."""


def _window_sums(z: np.ndarray, window: int) -> np.ndarray:
    """Sums of ``window`` consecutive rows of ``z`` (zero-padded at both ends: every window
    that overlaps the series), shape ``(n + window - 1, K)``.

    ``sums.T @ sums / window`` is the Bartlett long-run covariance of the column sums; as a
    Gram matrix it is positive semi-definite, whatever gaps the zero rows stand for.
    """
    n, k = z.shape
    c = np.vstack([np.zeros((1, k)), np.cumsum(z, axis=0)])
    idx = np.arange(n + window - 1)
    hi = np.minimum(idx + 1, n)
    lo = np.maximum(idx + 1 - window, 0)
    return c[hi] - c[lo]


def _default_window(avg: np.ndarray, horizon: int, n_days: float) -> int:
    block = max(float(horizon), _pw_block_length(avg))
    return max(1, round(_HAC_WINDOW_PER_BLOCK * block), round(FIXED_B * n_days))


def _noise_df(b: float) -> float:
    """Degrees of freedom of the day-noise variance, estimated with a window of ``b`` times the
    days: the Student t whose 97.5% point is the Kiefer-Vogelsang critical value
    (:func:`xfer.evaluate.har.fixed_b_df`, uncorrected). The variance itself is divided by the
    fixed-b bias factor, so this is conservative when day noise dominates; the exact match
    (``corrected=True``) was measured too (``tests/evaluate/test_pooled.py``'s ``_coverage``,
    same seeds): it covered 93.3% (main design), 95.0% (noise only), 92.3% (heterogeneity only),
    94.0% (ragged), 94.7% (8 targets), with 3.25% false verdicts on a null; this one 95.0%,
    96.3%, 93.0%, 96.0%, 95.7% and 1.75%. The heterogeneity-only design decides: kept."""
    return har.fixed_b_df(round(b, 4), corrected=False)


def pooled_effect(d: pd.DataFrame, *, horizon: int = 1, level: float = 0.95,
                  window: int | None = None, seed_var: pd.Series | None = None) -> PooledEffect:
    """Pool the day-level effects of several targets into one random-effects estimate.

    ``d``: one row per calendar day (sorted), one column per target, the seed-averaged paired
    day-score difference (transfer minus baseline); NaN where the day is not one of the
    target's test days. ``seed_var``: per target, the variance of its estimate that comes from
    its training seeds (:func:`xfer.evaluate.inference._seed_variance`), added to that target's
    noise; seeds are independent between targets, so it adds to the noise of the average as
    ``sum_k seed_var_k / K**2``.
    """
    func = "pooled_effect"
    if not isinstance(d, pd.DataFrame):
        raise _bad("d", func, "a DataFrame (days x targets)", type(d).__name__)
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise _bad("horizon", func, "an int >= 1", horizon)
    if isinstance(level, bool) or not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise _bad("level", func, "a float in the range (0, 1)", level)
    x = d.to_numpy(dtype=np.float64)
    if np.isinf(x).any():
        raise _bad("d", func, "finite or NaN (missing) everywhere", "an infinite value")
    have = np.isfinite(x)
    n_k = have.sum(axis=0)
    if (n_k < 2).any():
        raise _bad("d", func, "at least 2 days for every target",
                   {str(c): int(n) for c, n in zip(d.columns, n_k, strict=True) if n < 2})
    k = x.shape[1]
    if k < 3:
        raise _bad("d", func, "at least 3 targets (a spread and a prediction interval need them)", k)
    if window is not None and (isinstance(window, bool) or not isinstance(window, int | np.integer)
                               or window < 1):
        raise _bad("window", func, "an int >= 1", window)

    y = np.where(have, x, 0.0).sum(axis=0) / n_k
    z = np.where(have, x - y, 0.0) / n_k  # each day's share of each target's estimate error
    avg_days = np.where(have, x, 0.0).sum(axis=1) / np.maximum(have.sum(axis=1), 1)
    w = (int(window) if window is not None
         else _default_window(avg_days[have.any(axis=1)], horizon, float(n_k.mean())))
    w = min(w, x.shape[0])
    s = _window_sums(z, w)
    # Bartlett estimates of a demeaned series' variance are biased down by the factor
    # 1 - b + b**2 / 3 (b = window / days; Kiefer & Vogelsang 2005): divided out here
    b_k = w / n_k
    v_kk = (s * s).sum(axis=0) / w / (1 - b_k + b_k**2 / 3)  # each target's day-noise variance
    total = s.sum(axis=1)
    b = w / float(n_k.mean())
    c = float(total @ total) / w / k**2 / (1 - b + b**2 / 3)  # day-noise variance of the average
    if seed_var is not None:
        sv = seed_var.reindex(d.columns).to_numpy(dtype=np.float64)
        if not np.isfinite(sv).all() or (sv < 0).any():
            raise _bad("seed_var", func, "a finite variance >= 0 for every target", seed_var.to_dict())
        v_kk = v_kk + sv
        c += float(sv.sum()) / k**2

    estimate = float(y.mean())
    spread = float(np.var(y, ddof=1))
    noise_part = (float(v_kk.sum()) - k * c) / (k - 1)
    tau2 = max(0.0, spread - noise_part)
    var_mu = tau2 / k + c
    se = math.sqrt(var_mu)
    # Welch-Satterthwaite: the between-target part has K - 1 df, the day-noise part those of its
    # fixed-b long-run variance; whichever dominates sets the tails
    df = har.satterthwaite_df([(tau2 / k, float(k - 1)), (c, _noise_df(b))])
    t_ci = float(stats.t.ppf(0.5 + level / 2, df))
    # the new target's own deviation (tau2, K - 2 df) joins the between-target part; the day
    # noise keeps its df, so with tau2 = 0 the prediction interval is the mean's interval
    # (a K - 2 reference alone made it narrower whenever the noise df were fewer)
    df_pi = har.satterthwaite_df([(tau2 * (1 + 1 / k), float(k - 2)), (c, _noise_df(b))])
    t_pi = float(stats.t.ppf(0.5 + level / 2, df_pi))
    p = float(2 * stats.t.sf(abs(estimate) / se, df)) if se > 0 else float(estimate == 0)
    half_pi = max(t_pi * math.sqrt(tau2 + var_mu), t_ci * se)
    verdict = "inconclusive" if p >= 1 - level else ("positive" if estimate > 0 else "negative")
    return PooledEffect(estimate=estimate, ci_low=estimate - t_ci * se, ci_high=estimate + t_ci * se, se=se,
                        p_value=p, tau2=tau2, pi_low=estimate - half_pi, pi_high=estimate + half_pi,
                        noise_var=c, n_targets=k, window=w, df=df, verdict=verdict)
