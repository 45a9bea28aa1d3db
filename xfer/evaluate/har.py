"""Fixed-smoothing HAR variances of a mean: intervals and p-values with no resampling floor.

A verdict is a t statistic on the mean of a serially dependent day series (overlapping labels,
volatility clustering). Its standard error needs a long-run variance, and the classic choice
(a Bartlett window that grows slowly with the days, normal critical values) under-covers when
the dependence is persistent: the window misses the slow part, and the noise of the estimate is
ignored. Fixed-smoothing ("fixed-b") asymptotics keep both in view: the variance estimate uses a
window that is a fixed share of the days, and the critical values account for its noise. Two
estimators are implemented (Lazarus, Lewis, Stock & Watson 2018, "HAR inference:
recommendations for practice", JBES):

* **EWC** (equally weighted cosine): the long-run variance is the mean of ``nu`` squared cosine
  projections of the demeaned series, ``Lambda_j = sqrt(2 / n) sum_t cos(pi j (t - 1/2) / n)
  u_t``. Under fixed ``nu`` the t statistic is exactly Student's t with ``nu`` degrees of
  freedom (Gaussian limit), so p-values come from a known distribution down to any size:
  a table of 200 comparisons can still call an effect after Holm. ``nu`` trades bias (small
  ``nu`` averages only the lowest frequencies, where the long-run variance lives) against
  width (``t_nu`` has heavy tails for small ``nu``).
* **Fixed-b Bartlett**: the Bartlett (Newey-West) estimate with window ``b n``. Its expectation
  is ``1 - b + b^2 / 3`` of the truth in the fixed-b limit (divided out here), and its noise is
  summarised by the degrees of freedom of the Student t whose 97.5% quantile matches Kiefer &
  Vogelsang's (2005) critical value, rescaled for the bias correction.

Which one a verdict uses, and with which smoothing, is chosen by the calibration suite
(``scripts/calibrate.py``: every candidate is scored on the same difference matrices against
the oracle effect); see :data:`xfer.evaluate.inference.DEFAULT_METHOD`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

__all__ = ["bartlett_lrv", "combine_df", "ewc_lrv", "ewc_nu", "fixed_b_df", "kv_critical", "satterthwaite_df"]


def ewc_nu(n_days: int, scale: float = 0.4) -> int:
    """Degrees of freedom of EWC: ``scale * n^(2/3)`` (LLSW's rule at ``scale = 0.4``), at least
    2 and at most ``n - 1``."""
    return int(min(max(2, round(scale * n_days ** (2.0 / 3.0))), max(n_days - 1, 1)))


@lru_cache(maxsize=32)
def _cosines(n: int, nu: int) -> np.ndarray:
    t = (np.arange(n) + 0.5) / n
    return np.sqrt(2.0 / n) * np.cos(np.pi * np.arange(1, nu + 1)[:, None] * t[None, :])


def ewc_lrv(x: np.ndarray, nu: int) -> float:
    """EWC long-run variance of ``x`` (finite values, time order); the variance of its mean is
    this divided by ``len(x)``. Unbiased for white noise; ``nu`` cosines, ``nu`` df."""
    n = x.size
    if n < 2:
        return 0.0
    nu = int(min(max(nu, 1), n - 1))
    lam = _cosines(n, nu) @ (x - x.mean())
    return float(lam @ lam) / nu


def bartlett_lrv(x: np.ndarray, window: int) -> float:
    """Bartlett long-run variance of ``x`` with lag weights ``1 - |k| / window`` (uncorrected)."""
    n = x.size
    w = int(min(max(window, 1), n))
    u = x - x.mean()
    c = np.concatenate([[0.0], np.cumsum(u)])
    idx = np.arange(n + w - 1)
    sums = c[np.minimum(idx + 1, n)] - c[np.maximum(idx + 1 - w, 0)]
    return float(sums @ sums) / w / n


def kv_critical(b: float) -> float:
    """Kiefer & Vogelsang (2005) 97.5% quantile of the fixed-b Bartlett t statistic."""
    return 1.96 + 2.9694 * b + 0.4160 * b**2 - 0.5324 * b**3


def bias_factor(b: float) -> float:
    """Fixed-b expectation of the Bartlett long-run variance, as a share of the truth."""
    return 1.0 - b + b**2 / 3.0


@lru_cache(maxsize=256)
def fixed_b_df(b: float, corrected: bool = True) -> float:
    """Degrees of freedom of the Student t that matches the fixed-b Bartlett t at 97.5%.

    ``corrected``: the variance is divided by :func:`bias_factor`, so the matching quantile is
    the KV critical value times ``sqrt(bias_factor)``."""
    if b <= 1e-6:
        return 1e7
    target = kv_critical(b) * (math.sqrt(bias_factor(b)) if corrected else 1.0)
    if target <= stats.norm.ppf(0.975):
        return 1e7
    return float(optimize.brentq(lambda v: stats.t.ppf(0.975, v) - target, 0.2, 1e7))


def satterthwaite_df(parts: list[tuple[float, float]]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates ``(v, df)``."""
    total = sum(v for v, _ in parts)
    den = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    return float(min(max(total * total / den, 1.0), 1e7)) if den > 0 else 1e7


def combine_df(day_var: float, day_df: float, seed_var: float, n_seeds: int) -> float:
    """Degrees of freedom of ``day_var + seed_var``: the seed term is a spread of ``n_seeds``
    means (``n_seeds - 1`` df)."""
    parts = [(day_var, day_df)]
    if n_seeds > 1 and seed_var > 0:
        parts.append((seed_var, float(n_seeds - 1)))
    return satterthwaite_df(parts)
