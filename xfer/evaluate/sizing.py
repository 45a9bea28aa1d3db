"""How much target data a strategy needs: a monotone sizing curve with a joint band.

The question "at what share of the target's history does fine-tuning match scratch trained on
all of it?" is about the curve ``g(f) = E[score of the strategy at fraction f] - E[score of
scratch at 100%]``, on the same test days. The required fraction is ``f* = min{f : g(f) >= 0}``
(inf: never on the grid).

Why not the first fraction whose *measured* mean reaches the reference
(:func:`xfer.evaluate.inference.required_fraction_days`): it is a first-passage statistic
checked from the noisiest point up, so noise at small fractions crosses early (it said 5% in
14-20% of Monte Carlo runs whose truth was 35% or never), and a percentile bootstrap of a
discontinuous functional has no coverage guarantee. Here:

* the curve is fitted under the constraint every practitioner assumes (more target data does
  not hurt: ``g`` non-decreasing), by isotonic regression of the measured differences;
* a *joint* band ``L(f) <= g(f) <= U(f)`` for all fractions at once: each fraction's mean
  difference ``+-`` a critical value times its standard error, the critical value that of the
  maximum of the correlated t statistics (the fractions share the reference's and the market's
  day noise; the correlation is estimated from the days, as for pooled effects);
* the band is tightened by monotonicity (``max`` of ``L`` from the left, ``min`` of ``U`` from
  the right), which keeps its joint coverage: if ``g`` is inside the band and non-decreasing,
  ``g(f) >= L(f') `` for every ``f' <= f``;
* the interval of ``f*`` is ``[min{f : U(f) >= 0}, min{f : L(f) >= 0}]``: whenever the band
  covers ``g``, ``f*`` lies in it, so it covers at least as often as the band (a little
  conservative: the band is simultaneous).

Standard errors come from the days (Bartlett long-run covariance across fractions with the
fixed-b window and bias factor of :mod:`xfer.evaluate.pooled`) plus each fraction's seed
variance (:func:`xfer.evaluate.inference._seed_variance`); the critical value of the maximum is
translated to the fixed-b Student t of the window, so no resampling floor limits it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xfer.evaluate.inference import (
    _HAC_WINDOW_PER_BLOCK,
    _as_seed_day,
    _bad,
    _pw_block_length,
    _seed_mean,
    _seed_variance,
)
from xfer.evaluate.pooled import FIXED_B, _noise_df, _window_sums

__all__ = ["SizingCurve", "monotone_sizing"]

_MAX_DRAWS = 40_000
"""Gaussian draws for the critical value of the maximum (fixed generator: deterministic)."""


@dataclass(frozen=True)
class SizingCurve:
    """Result of :func:`monotone_sizing`; arrays are per fraction, in increasing order."""

    fractions: np.ndarray
    measured: np.ndarray
    """Mean paired difference (strategy at f minus the reference) per fraction."""
    fitted: np.ndarray
    """Isotonic (non-decreasing) fit of ``measured``, weighted by precision."""
    lower: np.ndarray
    """Joint band, tightened by monotonicity."""
    upper: np.ndarray
    se: np.ndarray
    critical: float
    point: float
    """Smallest fraction whose fitted difference is >= 0 (inf: none)."""
    ci_low: float
    """Smallest fraction whose band's upper bound is >= 0 (inf: none)."""
    ci_high: float
    """Smallest fraction whose band's lower bound is >= 0 (inf: none)."""


def _isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    vals: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y, w, strict=True):
        vals.append(float(yi))
        wts.append(float(wi))
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, s2 = vals.pop(), wts.pop(), sizes.pop()
            w1 = wts[-1]
            vals[-1] = (vals[-1] * w1 + v2 * w2) / (w1 + w2)
            wts[-1] = w1 + w2
            sizes[-1] += s2
    return np.repeat(vals, sizes)


def _first(fracs: np.ndarray, ok: np.ndarray) -> float:
    return float(fracs[np.argmax(ok)]) if ok.any() else math.inf


def _max_critical(corr: np.ndarray, level: float, df: float) -> float:
    """Critical value ``c`` with ``P(max_f |T_f| <= c) = level`` for correlated t statistics:
    the Gaussian maximum's quantile (simulated), moved to the same per-fraction tail area of a
    Student t with ``df`` degrees of freedom."""
    k = corr.shape[0]
    vals, vecs = np.linalg.eigh(corr)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    z = np.random.default_rng(20_240_601).standard_normal((_MAX_DRAWS, k)) @ root.T
    c_norm = float(np.quantile(np.abs(z).max(axis=1), level))
    tail = 2 * stats.norm.sf(c_norm)
    return float(stats.t.isf(tail / 2, df))


def monotone_sizing(curve: Mapping[float, np.ndarray], ref: np.ndarray, *, horizon: int = 1,
                    level: float = 0.9, window: int | None = None) -> SizingCurve:
    """The sizing curve of one strategy against a reference, and its required fraction.

    ``curve`` maps fraction -> per-day scores ``(n_seeds, n_days)`` of the strategy trained on
    that fraction; ``ref`` the reference's (scratch at full data), all on the SAME test days
    (NaN: a missing day). ``level`` is the joint band's (and so, at least, the interval's).
    """
    func = "monotone_sizing"
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise _bad("horizon", func, "an int >= 1", horizon)
    if isinstance(level, bool) or not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise _bad("level", func, "a float in the range (0, 1)", level)
    if not curve:
        raise _bad("curve", func, "at least one fraction", dict(curve))
    fracs = np.array(sorted(curve), dtype=np.float64)
    ref_arr = _as_seed_day(ref, "ref", func)
    ref_mean = _seed_mean(ref_arr)
    arrays = [_as_seed_day(curve[f], f"curve[{f}]", func) for f in sorted(curve)]
    if {a.shape[1] for a in arrays} != {ref_arr.shape[1]}:
        raise _bad("curve", func, "arrays with the same number of days as 'ref'",
                   sorted({a.shape[1] for a in arrays}))
    x = np.column_stack([_seed_mean(a) - ref_mean for a in arrays])  # (days, fractions)
    days = np.isfinite(x).all(axis=1)
    if days.sum() < 10:
        raise _bad("curve", func, "at least 10 days that every fraction and 'ref' have", int(days.sum()))
    x = x[days]
    n = x.shape[0]
    measured = x.mean(axis=0)
    if window is None:
        block = max(float(horizon), _pw_block_length(x.mean(axis=1)))
        window = max(1, round(_HAC_WINDOW_PER_BLOCK * block), round(FIXED_B * n))
    w = min(int(window), n)
    b = w / n
    s = _window_sums((x - measured) / n, w)
    cov = s.T @ s / w / (1 - b + b**2 / 3)
    # each fraction's own seeds (and the reference's) add variance the day level does not see
    seed = np.array([_seed_variance(a[:, days] - ref_mean[days], x[:, i], w)
                     for i, a in enumerate(arrays)])
    cov = cov + np.diag(seed) + _seed_variance(ref_arr[:, days], ref_mean[days], w)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    safe = np.where(se > 0, se, 1.0)
    corr = cov / np.outer(safe, safe)
    np.fill_diagonal(corr, 1.0)
    crit = _max_critical(corr, float(level), _noise_df(b))
    fitted = _isotonic(measured, 1.0 / np.maximum(se, 1e-150) ** 2)  # no day noise: equal huge weights
    lower = np.maximum.accumulate(measured - crit * se)
    upper = np.minimum.accumulate((measured + crit * se)[::-1])[::-1]
    return SizingCurve(fractions=fracs, measured=measured, fitted=fitted, lower=lower, upper=upper,
                       se=se, critical=crit, point=_first(fracs, fitted >= 0),
                       ci_low=_first(fracs, upper >= 0), ci_high=_first(fracs, lower >= 0))
