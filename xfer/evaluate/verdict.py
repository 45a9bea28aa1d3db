"""Negative-transfer verdicts and data-sizing: paired comparisons with bootstrap intervals.

A transfer "gain" is a paired difference (transfer - scratch) on the same target data,
seed and test fold. The verdict is read off a bootstrap confidence interval of the mean
difference, never off a point estimate: ``positive`` if the whole interval is above zero,
``negative`` if it is below, ``inconclusive`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Verdict:
    mean: float
    ci_low: float
    ci_high: float
    n: int
    verdict: str  # positive | negative | inconclusive


def paired_verdict(diffs: Sequence[float], *, level: float = 0.95, n_boot: int = 4000,
                   seed: int = 0, higher_is_better: bool = True) -> Verdict:
    """Bootstrap CI of the mean paired difference and the verdict it supports."""
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=np.float64)
    if not higher_is_better:
        d = -d
    if len(d) < 2:
        m = float(d.mean()) if len(d) else float("nan")
        return Verdict(m, float("nan"), float("nan"), len(d), "inconclusive")
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    verdict = "positive" if lo > 0 else "negative" if hi < 0 else "inconclusive"
    return Verdict(float(d.mean()), float(lo), float(hi), len(d), verdict)


def delta_verdict(diffs: Sequence[float], *, higher_is_better: bool = True, **kw: float) -> Verdict:
    """:func:`paired_verdict` reported in the metric's own units (raw ``a - b`` differences).

    The verdict already accounts for the metric's direction; ``mean`` and the interval are
    flipped back so a table shows e.g. an MSE change as the MSE change, interval sorted.
    """
    v = paired_verdict(diffs, higher_is_better=higher_is_better, **kw)
    if higher_is_better:
        return v
    lo, hi = sorted([-v.ci_low, -v.ci_high])
    return Verdict(-v.mean, lo, hi, v.n, v.verdict)


@dataclass(frozen=True)
class RequiredFraction:
    point: float
    """Smallest fraction whose mean score reaches scratch at full data (inf: never)."""
    ci_low: float
    ci_high: float
    reached_share: float
    """Share of bootstrap draws in which the curve reached the scratch level at all."""


def required_fraction(curve: Mapping[float, Sequence[float]], scratch_full: Sequence[float], *,
                      level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> RequiredFraction:
    """Where a strategy's data-sizing curve first reaches scratch-at-full-data.

    ``curve`` maps fraction -> scores (one per seed/fold, higher = better). The interval
    resamples the scores at every fraction and the scratch reference independently.
    """
    fracs = sorted(curve)
    if not fracs or not len(scratch_full):
        return RequiredFraction(math.inf, math.inf, math.inf, 0.0)
    arrays = [np.asarray(curve[f], dtype=np.float64) for f in fracs]
    ref = np.asarray(scratch_full, dtype=np.float64)

    def first_reach(means: list[float], ref_mean: float) -> float:
        for f, m in zip(fracs, means, strict=True):
            if m >= ref_mean:
                return f
        return math.inf

    point = first_reach([float(a.mean()) for a in arrays], float(ref.mean()))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        means = [float(a[rng.integers(0, len(a), len(a))].mean()) for a in arrays]
        draws.append(first_reach(means, float(ref[rng.integers(0, len(ref), len(ref))].mean())))
    arr = np.asarray(draws)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    lo, hi = np.quantile(arr, q, method="inverted_cdf")
    return RequiredFraction(point, float(lo), float(hi), float(np.isfinite(arr).mean()))
