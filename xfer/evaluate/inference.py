"""Paired, day-level inference: is model A better than model B on these test days?

Why not a bootstrap over (seed, fold) summaries: with 9-15 numbers, seeds that share a fold
share its test block, and the real uncertainty is *which days happened*. A percentile
bootstrap over those summaries rejected a true null 21% of the time at a nominal 5%.

The design here: every model gives one score per test day (walk-forward test blocks pooled
in time order, so the days form one contiguous series) for every training seed. The paired
difference ``d[s, t] = score_a[s, t] - score_b[s, t]`` is averaged over the seeds day by day;
the estimate is the mean of that series, and its standard error has two parts:

* days: a long-run variance of the seed-averaged series, because day scores are serially
  dependent (labels over a horizon ``h`` overlap; models that differ in skill inherit the
  target's volatility clustering, whose autocorrelation decays slowly);
* seeds: an explicit variance component (:func:`_seed_variance`): the spread of the seeds'
  means minus the part of it that is day noise, divided by the number of seeds. (Resampling
  seeds on top of the days counted that noise twice: 0.25% false verdicts at nominal 5%.)

The day part is, by default, a fixed-smoothing HAR estimate (:mod:`xfer.evaluate.har`): the
equally-weighted-cosine (EWC) long-run variance, whose t statistic is Student's t with ``nu``
df, combined with the seed part's ``S - 1`` df by Welch-Satterthwaite. P-values come from that
t distribution, so they have no resampling floor (a bootstrap p-value is at least
``1 / (1 + B)``, which made a table of 101 comparisons unable to call anything after Holm).
The smoothing was chosen by the calibration suite, which scores every candidate (EWC at
several ``nu``, fixed-b Bartlett, the earlier stationary bootstrap-t) on the same difference
matrices against an oracle effect: CALIBRATION.md. The earlier method, a stationary-bootstrap-t
with a Bartlett window of two Politis-White block lengths, stays available
(``method="bootstrap"``): it held its size on return nulls but covered real effects at
85-90% (the window missed the slow part of the dependence).

The interval is ``estimate +- q * se`` and the p-value comes from the same reference
distribution, so they agree exactly: the verdict is non-inconclusive if and only if
``p < 1 - level``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from arch.bootstrap import optimal_block_length
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests  # type: ignore[import-untyped]

from xfer.evaluate import har

_MIN_DAYS_FOR_PW = 10
"""Below this many days the Politis-White estimate is noise (or fails): use no blocking."""
_HAC_WINDOW_PER_BLOCK = 2.0
"""Bartlett window of the studentising standard error, in mean block lengths. One block
length over-rejected at small samples (6-8% at 5% on MA(4) x 150 days); two were within
about a point of nominal from 150 to 1000 days in the calibration runs."""
_CELLS_PER_CHUNK = 2_000_000
"""Bootstrap draws are processed in chunks of about this many (draw, day) cells to cap memory."""


@dataclass(frozen=True)
class DayTest:
    """Result of :func:`paired_day_test` (all in the units of the day scores)."""

    estimate: float
    """Mean over days of the seed-averaged ``d = score_a - score_b`` (higher = A better)."""
    ci_low: float
    ci_high: float
    p_value: float
    """Two-sided bootstrap p-value of H0: E[d] = 0."""
    half_width: float
    """Half the interval width: the smallest effect this design could resolve."""
    n_days: int
    n_seeds: int
    block_length: float
    """Mean block length of the stationary bootstrap actually used."""
    verdict: str
    """``positive`` | ``negative`` | ``inconclusive`` at the given level, unadjusted."""
    se: float = math.nan
    """Standard error of ``estimate`` (day and seed parts)."""
    df: float = math.nan
    """Degrees of freedom of the reference Student t (inf: normal; bootstrap: inf)."""


@dataclass(frozen=True)
class RequiredFraction:
    """Where a data-sizing curve first reaches a reference (see :func:`required_fraction_days`)."""

    point: float
    """Smallest fraction whose mean score reaches the reference mean (inf: never)."""
    ci_low: float
    ci_high: float
    reached_share: float
    """Share of bootstrap draws in which some fraction reached the reference at all."""


def _bad(name: str, func: str, must: str, got: object) -> ValueError:
    """The sklearn-style message: which parameter, of what, must be what, got what."""
    return ValueError(f"The '{name}' parameter of {func} must be {must}. Got {got!r} instead.")


def _check_common(func: str, horizon: int, level: float, n_boot: int) -> None:
    """Validate the arguments shared by the public tests (fail fast, before any work)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise _bad("horizon", func, "an int >= 1", horizon)
    if isinstance(level, bool) or not (
        isinstance(level, float | int | np.floating | np.integer) and 0.0 < float(level) < 1.0
    ):
        raise _bad("level", func, "a float in the range (0, 1)", level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise _bad("n_boot", func, "an int >= 1", n_boot)


def _as_seed_day(d: np.ndarray, name: str, func: str) -> np.ndarray:
    """A (n_seeds, n_days) float array; a 1-D array is one seed."""
    arr = np.asarray(d, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise _bad(name, func, "a 1-D or 2-D (n_seeds, n_days) array", f"shape {arr.shape}")
    if np.isinf(arr).any():
        raise _bad(name, func, "finite or NaN (missing) everywhere", "an infinite value")
    return arr


def _seed_mean(d: np.ndarray) -> np.ndarray:
    """Per-day mean over the seeds that have the day (NaN where none has it)."""
    finite = np.isfinite(d)
    n = finite.sum(axis=0)
    total = np.where(finite, d, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _pw_block_length(x: np.ndarray) -> float:
    """Politis-White stationary-bootstrap block length of ``x``, 1.0 where it is undefined.

    NaN days are dropped first (they carry no information about the autocorrelation); a
    short or constant series has no estimable dependence, so no blocking is the safe default.
    """
    x = x[np.isfinite(x)]
    if x.size < _MIN_DAYS_FOR_PW or not np.ptp(x) > 0:
        return 1.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(optimal_block_length(x)["stationary"].iloc[0])
    except (ValueError, np.linalg.LinAlgError):
        return 1.0
    return value if math.isfinite(value) and value >= 1.0 else 1.0


def stationary_indices(
    rng: np.random.Generator, n_boot: int, n_days: int, block_length: float
) -> np.ndarray:
    """``(n_boot, n_days)`` day indices of the stationary bootstrap, vectorised.

    Each position starts a new block with probability ``1 / block_length`` (the first always
    does), so block lengths are geometric with that mean; a block starts at a uniform day and
    runs on, wrapping round the end (circular), which keeps every day equally likely.
    """
    func = "stationary_indices"
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise _bad("n_boot", func, "an int >= 0", n_boot)
    if isinstance(n_days, bool) or not isinstance(n_days, int | np.integer) or n_days < 1:
        raise _bad("n_days", func, "an int >= 1", n_days)
    if not (isinstance(block_length, float | int | np.floating | np.integer)
            and math.isfinite(block_length) and block_length >= 1.0):
        raise _bad("block_length", func, "a finite float >= 1", block_length)
    new = rng.random((n_boot, n_days)) < 1.0 / block_length
    new[:, 0] = True
    starts = rng.integers(0, n_days, size=(n_boot, n_days))
    pos = np.arange(n_days)
    last = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    day = np.take_along_axis(starts, last, axis=1)
    day += pos - last  # in [0, 2 n_days): wrap round the end without a (slow) integer division
    day -= n_days * (day >= n_days)
    return day


def _seed_weights(u: np.ndarray, n_seeds: int) -> np.ndarray:
    """Bootstrap counts (n_draws, n_seeds) from uniforms ``u``; all ones for a single seed.

    Seeds are drawn from shared uniforms so arrays with the same seeds get the same draw
    (joint resampling) while arrays with a different seed count still get a valid one.
    """
    if n_seeds == 1:
        return np.ones((u.shape[0], 1))
    n_draws = u.shape[0]
    picks = np.minimum((u[:, :n_seeds] * n_seeds).astype(np.int64), n_seeds - 1)
    # counts per (draw, seed) by one bincount: O(n_draws * n_seeds) memory, not n_seeds**2
    flat = (picks + n_seeds * np.arange(n_draws)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_draws * n_seeds)
    return counts.reshape(n_draws, n_seeds).astype(np.float64)


def _boot_means(d: np.ndarray, day_idx: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resampled grand means: per draw, the seed-weighted day means averaged over drawn days.

    Seeds missing a day drop out of that day's mean (NaN-aware weighted mean); a drawn day
    that no drawn seed has is ignored; a draw with no usable day gives NaN.
    """
    finite = np.isfinite(d)
    num = weights @ np.where(finite, d, 0.0)
    den = weights @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        day_mean = num / den
    drawn = np.take_along_axis(day_mean, day_idx, axis=1)
    ok = np.isfinite(drawn)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, drawn, 0.0).sum(axis=1) / count, np.nan)


def _draw_chunks(n_boot: int, n_days: int) -> list[int]:
    """Sizes of the chunks of draws, so no chunk holds much more than ``_CELLS_PER_CHUNK``."""
    size = max(1, _CELLS_PER_CHUNK // max(n_days, 1))
    return [min(size, n_boot - i) for i in range(0, n_boot, size)]


def _bootstrap(arrays: Sequence[np.ndarray], *, n_boot: int, block_length: float,
               seed: int) -> np.ndarray:
    """``(n_boot, len(arrays))`` grand means, all arrays resampled with ONE index set per draw.

    The arrays share their test days; resampling them with the same day blocks and seeds
    keeps their pairing (what makes a paired difference or a curve comparison precise).
    """
    rng = np.random.default_rng(seed)
    n_days = arrays[0].shape[1]
    max_seeds = max(a.shape[0] for a in arrays)
    out = []
    for size in _draw_chunks(n_boot, n_days):
        idx = stationary_indices(rng, size, n_days, block_length)
        u = rng.random((size, max_seeds))
        out.append(np.column_stack(
            [_boot_means(a, idx, _seed_weights(u, a.shape[0])) for a in arrays]))
    return np.concatenate(out, axis=0)


def _bartlett_var(x: np.ndarray, window: int) -> np.ndarray:
    """Bartlett (HAC) variance of each row's mean, lag weights ``1 - |k| / window``.

    Uses the moving-sum identity ``sum_k (window - |k|)_+ n c_k = sum_t W_t**2``, with ``W_t``
    the sums of ``window`` consecutive demeaned values of the zero-padded row, so it costs
    O(n_days) per row whatever the window, in about two arrays of the size of ``x``.
    ``window = 1`` is the i.i.d. variance ``c_0 / n``.
    """
    n = x.shape[-1]
    w = int(min(max(window, 1), n))
    c = np.cumsum(x - x.mean(axis=-1, keepdims=True), axis=-1)
    head = (c[..., : w - 1] ** 2).sum(axis=-1)  # windows hanging over the start
    prev = np.concatenate([np.zeros((*c.shape[:-1], 1)), c[..., : n - w]], axis=-1)
    middle = ((c[..., w - 1:] - prev) ** 2).sum(axis=-1)  # full windows
    tail = ((c[..., -1:] - c[..., n - w: n - 1]) ** 2).sum(axis=-1)  # over the end
    return np.maximum((head + middle + tail) / (n * w), 0.0) / n


def _seed_variance(arr: np.ndarray, x: np.ndarray, window: int) -> float:
    """Variance of the seed-averaged estimate that comes from the seeds themselves.

    With ``d[s, t] = a_s + c_t + e[s, t]`` (a seed effect, a day effect shared by all seeds,
    seed-specific day noise), the spread of the seeds' means holds ``Var(a)`` *plus* the day
    noise of each seed's mean, which the day-level bootstrap of the seed-averaged series already
    counts. So the noise part is subtracted: it is estimated from each seed's deviation from the
    seed mean (Bartlett variance of its mean, scaled by ``S / (S - 1)`` because the deviations
    are taken from a mean that contains the seed itself). Returns ``max(0, Var(a)) / S``; 0 for
    one seed. (Adding the raw spread instead counted the day noise twice: intervals ~1.35x too
    wide and 0.25% false verdicts on a true null at nominal 5%; see CALIBRATION.md.)
    """
    n_seeds = arr.shape[0]
    if n_seeds < 2:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(arr, axis=1)
        spread = float(np.var(means, ddof=1))
        noise = []
        for row in arr:
            dev = (row - x)[np.isfinite(row)]
            if dev.size > 1:
                noise.append(float(_bartlett_var(dev[None, :], window)[0]))
    tau2 = float(np.mean(noise)) * n_seeds / (n_seeds - 1) if noise else 0.0
    return max(0.0, spread - tau2) / n_seeds


def _studentised_draws(x: np.ndarray, estimate: float, *, n_boot: int, block_length: float,
                       window: int, seed: int) -> tuple[np.ndarray, float]:
    """``|T*|`` draws of the day-level bootstrap-t and the day-level standard error.

    Per draw (stationary-bootstrap day indices of the seed-averaged series ``x``):
    ``T* = (mean* - estimate) / se*``, ``se*`` the Bartlett standard error of the drawn days.
    A constant ``x`` has no day-level scale: every draw is 0. A draw whose days have no spread
    while ``x`` has some gives ``|T*| = inf`` (the most extreme draw), so a tiny or mostly
    constant series gets a wide, possibly infinite, interval rather than a falsely narrow one.
    """
    rng = np.random.default_rng(seed)
    n_days = x.size
    se = float(np.sqrt(_bartlett_var(x[None, :], window)[0])) if np.ptp(x) > 0 else 0.0
    out = []
    for size in _draw_chunks(n_boot, n_days):
        idx = stationary_indices(rng, size, n_days, block_length)
        xs = x[idx]
        t = np.abs(xs.mean(axis=1) - estimate)
        if se == 0.0:
            out.append(np.zeros(size))
            continue
        s_star = np.sqrt(_bartlett_var(xs, window))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(s_star > 0.0, t / s_star, np.where(t == 0.0, 0.0, np.inf)))
    return np.concatenate(out), se


def _critical_value(abs_t: np.ndarray, alpha: float) -> float:
    """The order statistic of ``|T*|`` that makes the interval and the p-value agree exactly.

    With ``B`` draws, ``p = (1 + k) / (1 + B)`` where ``k = #{|T*| >= |estimate|}``. Let
    ``k_max`` be the largest ``k`` with ``p < alpha``; then ``0`` lies outside
    ``estimate ± c`` (``|estimate| > c``) if and only if ``k <= k_max`` when ``c`` is the
    ``(B - k_max)``-th smallest ``|T*|``: about the ``1 - alpha`` quantile. ``inf`` when no
    ``p`` below ``alpha`` is attainable with this many draws.
    """
    b = abs_t.size
    k = np.arange(b + 1)
    k_max = int(np.count_nonzero((1.0 + k) / (1.0 + b) < alpha)) - 1
    if k_max < 0:
        return math.inf
    return float(np.sort(abs_t)[b - k_max - 1])


def _nan_test(n_seeds: int, block_length: float) -> DayTest:
    """What a test with no usable day says: nothing."""
    nan = math.nan
    return DayTest(nan, nan, nan, nan, nan, 0, n_seeds, block_length, "inconclusive")


Method = Literal["ewc", "fixed_b", "bootstrap"]
METHODS: tuple[str, ...] = ("ewc", "fixed_b", "bootstrap")
DEFAULT_METHOD: Method = "ewc"
"""The verdicts' inference, chosen by the calibration suite (CALIBRATION.md, candidates table)."""
DEFAULT_SMOOTHING: dict[str, float] = {"ewc": 0.2, "fixed_b": 0.5}
"""EWC: ``nu = s * n^(2/3)`` cosines; fixed-b: the Bartlett window as a share ``b`` of the days."""


SeedTerm = Literal["satterthwaite", "day_df", "none"]
DEFAULT_SEED_TERM: SeedTerm = "satterthwaite"
"""How the seeds enter an analytic test: ``satterthwaite`` adds their variance component with its
``S - 1`` df; ``day_df`` adds it but keeps the day part's df (its noise ignored, as the bootstrap
did); ``none`` leaves it out: the estimand is then the effect of *these* trained models, not of
the training procedure (a new set of seeds may differ)."""


def paired_day_test(d: np.ndarray, *, horizon: int = 1, level: float = 0.95, n_boot: int = 2000,
                    seed: int = 0, block_length: float | None = None, method: Method = DEFAULT_METHOD,
                    smoothing: float | None = None, seeds: SeedTerm = DEFAULT_SEED_TERM) -> DayTest:
    """Test of the mean paired day-score difference (days x seeds), with its interval.

    ``d`` is ``score_a - score_b`` with shape ``(n_seeds, n_days)`` (1-D: one seed), columns
    = test days in time order, NaN = the day is missing for that seed. Days missing for every
    seed are dropped; elsewhere a day's value is the mean over the seeds that have it. The
    standard error is ``sqrt(se_day^2 + seed term)`` (:func:`_seed_variance`: the seeds' own
    spread beyond their day noise, ``n_seeds - 1`` df). ``horizon`` is the label horizon
    (scores are dependent over at least that many days).

    ``method`` says how the day-level part is estimated and referred to a distribution:

    * ``ewc`` (the default): the equally-weighted-cosine long-run variance with
      ``nu = smoothing * n^(2/3)`` cosines (:mod:`xfer.evaluate.har`); Student t with the
      Welch-Satterthwaite df of ``nu`` and the seed term. No resampling: p-values have no floor.
    * ``fixed_b``: Bartlett with a window of ``smoothing * n`` days (at least two mean block
      lengths), bias-corrected, Student t matched to Kiefer-Vogelsang at 97.5%.
    ``seeds`` (analytic methods): see :data:`DEFAULT_SEED_TERM`.

    * ``bootstrap``: the stationary-bootstrap-t of earlier versions (``n_boot`` draws,
      ``block_length`` overrides the Politis-White choice): p-values floored at ``1 / (1 + B)``.

    The interval is ``estimate ± q * se`` and the p-value comes from the same reference
    distribution, so ``verdict != "inconclusive"`` exactly when ``p < 1 - level``. A constant
    ``d`` gives that constant and a zero-width interval.
    """
    func = "paired_day_test"
    _check_common(func, horizon, level, n_boot)
    if method not in METHODS:
        raise _bad("method", func, f"one of {list(METHODS)}", method)
    if seeds not in ("satterthwaite", "day_df", "none"):
        raise _bad("seeds", func, "one of ['satterthwaite', 'day_df', 'none']", seeds)
    if block_length is not None and not (
        isinstance(block_length, float | int | np.floating | np.integer)
        and not isinstance(block_length, bool)
        and math.isfinite(block_length) and block_length >= 1.0
    ):
        raise _bad("block_length", func, "None or a finite float >= 1", block_length)
    if smoothing is not None and not (
        isinstance(smoothing, float | int) and not isinstance(smoothing, bool)
        and smoothing > 0.0 and (method != "fixed_b" or smoothing <= 1.0)
    ):
        raise _bad("smoothing", func, "None or a float > 0 (fixed_b: <= 1)", smoothing)
    arr = _as_seed_day(d, "d", func)
    arr = arr[np.isfinite(arr).any(axis=1)][:, np.isfinite(arr).any(axis=0)]
    n_seeds, n_days = arr.shape
    if n_days == 0:
        return _nan_test(n_seeds, math.nan)
    x = _seed_mean(arr)
    estimate = float(x.mean())
    if block_length is None:
        block_length = max(float(horizon), _pw_block_length(x))
    block_length = float(min(block_length, n_days)) if n_days > 1 else 1.0
    window = max(1, round(_HAC_WINDOW_PER_BLOCK * block_length))
    if method == "bootstrap":
        return _bootstrap_test(arr, x, estimate, level=level, n_boot=n_boot, seed=seed,
                               block_length=block_length, window=window)
    s = float(smoothing if smoothing is not None else DEFAULT_SMOOTHING[method])
    if n_days < 3 or not np.ptp(x) > 0:
        day_var, day_df = 0.0, math.inf
    elif method == "ewc":
        nu = har.ewc_nu(n_days, s)
        day_var, day_df = har.ewc_lrv(x, nu) / n_days, float(nu)
    else:
        w = min(n_days, max(window, round(s * n_days)))
        b = w / n_days
        day_var = har.bartlett_lrv(x, w) / har.bias_factor(b) / n_days
        day_df = har.fixed_b_df(round(b, 4))
    seed_var = _seed_variance(arr, x, window) if seeds != "none" else 0.0
    se = math.sqrt(day_var + seed_var)
    df = har.combine_df(day_var, day_df, seed_var, n_seeds) if seeds == "satterthwaite" else day_df
    return _t_test(estimate, se, df, level, n_days, n_seeds, block_length)


def _t_test(estimate: float, se: float, df: float, level: float, n_days: int, n_seeds: int,
            block_length: float) -> DayTest:
    """Interval and p-value from Student's t with ``df`` (normal beyond 1e6 df)."""
    if se > 0.0:
        q = float(stats.t.ppf(0.5 + level / 2, df)) if df < 1e6 else float(stats.norm.ppf(0.5 + level / 2))
        t = abs(estimate) / se
        p = float(2 * (stats.t.sf(t, df) if df < 1e6 else stats.norm.sf(t)))
    else:
        q, p = 0.0, (0.0 if estimate != 0.0 else 1.0)
    c = q * se
    lo, hi = estimate - c, estimate + c
    verdict = "positive" if lo > 0 else "negative" if hi < 0 else "inconclusive"
    return DayTest(estimate, lo, hi, p, c, n_days, n_seeds, block_length, verdict, se, df)


def _bootstrap_test(arr: np.ndarray, x: np.ndarray, estimate: float, *, level: float, n_boot: int,
                    seed: int, block_length: float, window: int) -> DayTest:
    """The stationary-bootstrap-t (``method="bootstrap"``; see the module docstring)."""
    n_seeds, n_days = arr.shape
    abs_t, se_day = _studentised_draws(x, estimate, n_boot=n_boot, block_length=block_length,
                                       window=window, seed=seed)
    se = math.sqrt(se_day**2 + _seed_variance(arr, x, window))
    alpha = 1.0 - float(level)
    if se_day == 0.0 and se > 0.0:  # no day-level spread at all: the seed term alone, normal
        abs_t = np.abs(np.random.default_rng(seed).standard_normal(n_boot))
    crit = _critical_value(abs_t, alpha)
    c = crit * se if se > 0.0 else (0.0 if math.isfinite(crit) else math.inf)
    z = abs(estimate) / se if se > 0.0 else (math.inf if estimate != 0.0 else 0.0)
    p = (1.0 + np.count_nonzero(abs_t >= z)) / (1.0 + abs_t.size)
    lo, hi = estimate - c, estimate + c
    verdict = "positive" if lo > 0 else "negative" if hi < 0 else "inconclusive"
    return DayTest(estimate, lo, hi, float(p), c, n_days, n_seeds, block_length, verdict, se, math.inf)


def detectable_effect(se: float, df: float, alpha: float, power: float = 0.8) -> float:
    """The effect a test with standard error ``se`` and a Student-t reference with ``df`` degrees
    of freedom (inf: normal) finds with probability ``power`` at two-sided level ``alpha`` (e.g. a
    table's Holm bound ``0.05 / m``): ``se`` times the exact noncentrality of that power."""
    if not (math.isfinite(se) and se > 0 and 0 < alpha < 1 and 0 < power < 1) or math.isnan(df):
        return math.nan
    if not math.isfinite(df) or df >= 1e6:
        return se * float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return se * _noncentral_shift(float(df), alpha, power)


def _noncentral_shift(df: float, alpha: float, power: float) -> float:
    """The noncentrality ``delta`` at which a two-sided t test with ``df`` rejects with probability
    ``power`` (exact: the statistic is noncentral t when the variance estimate is scaled
    chi-square with ``df`` df, as EWC's is); the sum of the two quantiles is its first guess."""
    crit = float(stats.t.ppf(1 - alpha / 2, df))

    def gap(delta: float) -> float:
        reject = float(stats.nct.sf(crit, df, delta) + stats.nct.cdf(-crit, df, delta))
        return (reject if math.isfinite(reject) else 1.0) - power

    hi = crit + float(stats.t.ppf(power, df))
    while gap(hi) < 0:
        hi *= 1.5
    return float(optimize.brentq(gap, 0.0, hi))


def adjust_pvalues(p: Sequence[float], method: Literal["holm", "bh"] = "holm") -> np.ndarray:
    """Multiplicity-adjusted p-values for a family of verdicts (a study's table of cells).

    ``holm`` controls the family-wise error rate (any false verdict), ``bh`` the false
    discovery rate (Benjamini-Hochberg). NaN p-values (cells that could not be tested) pass
    through as NaN and are left out of the family, so they neither use up nor dilute the
    error budget.
    """
    func = "adjust_pvalues"
    methods = {"holm": "holm", "bh": "fdr_bh"}
    if method not in methods:
        raise _bad("method", func, f"one of {sorted(methods)}", method)
    arr = np.asarray(p, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(arr)
    if ((arr[keep] < 0) | (arr[keep] > 1)).any():
        raise _bad("p", func, "a sequence of probabilities in [0, 1] or NaN", arr.tolist())
    out = np.full(arr.shape, np.nan)
    if keep.any():
        out[keep] = multipletests(arr[keep], method=methods[method])[1]
    return out


def verdict_from(estimate: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """``positive``/``negative`` (by the sign of ``estimate``) if ``p_adjusted < alpha``.

    Re-derives a verdict after multiplicity adjustment; with the unadjusted p-value and
    ``alpha = 1 - level`` it reproduces :func:`paired_day_test`'s own verdict.
    """
    if not 0.0 < alpha < 1.0:
        raise _bad("alpha", "verdict_from", "a float in the range (0, 1)", alpha)
    if not (math.isfinite(estimate) and math.isfinite(p_adjusted)) or p_adjusted >= alpha:
        return "inconclusive"
    return "positive" if estimate > 0 else "negative" if estimate < 0 else "inconclusive"


def _first_reach(fracs: np.ndarray, means: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per row, the smallest fraction whose mean is >= the reference mean (inf: none)."""
    reached = means >= ref[:, None]
    any_reached = reached.any(axis=1)
    first = np.where(any_reached, fracs[np.argmax(reached, axis=1)], np.inf)
    return first.astype(np.float64)


def required_fraction_days(curve: Mapping[float, np.ndarray], ref: np.ndarray, *,
                           horizon: int = 1, level: float = 0.9, n_boot: int = 1000,
                           seed: int = 0) -> RequiredFraction:
    """The smallest target-data fraction at which a strategy reaches a reference score.

    ``curve`` maps fraction -> per-day scores ``(n_seeds, n_days)`` of the strategy trained
    on that fraction, ``ref`` the reference's (e.g. scratch at full data), all on the SAME
    test days. Every bootstrap draw resamples one set of day blocks and seeds for all of
    them jointly: the curve and the reference share the test days, so resampling them
    independently (the old design) would add spurious noise to the comparison.
    The interval is the ``inverted_cdf`` quantile of the per-draw first-reach fraction (inf
    when a draw never reaches); ``reached_share`` says how often a draw reached at all.
    """
    func = "required_fraction_days"
    _check_common(func, horizon, level, n_boot)
    fracs = np.array(sorted(curve), dtype=np.float64)
    ref_arr = _as_seed_day(ref, "ref", func)
    if fracs.size == 0 or ref_arr.size == 0:
        return RequiredFraction(math.inf, math.inf, math.inf, 0.0)
    arrays = [_as_seed_day(curve[f], f"curve[{f}]", func) for f in sorted(curve)] + [ref_arr]
    shapes = {a.shape[1] for a in arrays}
    if len(shapes) > 1:
        raise _bad("curve", func, "arrays with the same number of days as 'ref'",
                   f"day counts {sorted(shapes)}")
    point_means = np.array([np.nanmean(_seed_mean(a)) for a in arrays])
    point = float(_first_reach(fracs, point_means[None, :-1], point_means[-1:])[0])
    n_days = ref_arr.shape[1]
    lengths = [_pw_block_length(_seed_mean(a)) for a in arrays]
    block = min(max(float(horizon), *lengths), float(n_days)) if n_days > 1 else 1.0
    boots = _bootstrap(arrays, n_boot=n_boot, block_length=block, seed=seed)
    first = _first_reach(fracs, boots[:, :-1], boots[:, -1])
    tail = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(first, [tail, 1.0 - tail], method="inverted_cdf")
    return RequiredFraction(point, float(lo), float(hi), float(np.isfinite(first).mean()))
