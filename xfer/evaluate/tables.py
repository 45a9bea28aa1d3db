"""From per-fit rows and their test days to the result tables: verdicts, curves, sizing, comparisons.

The one aggregation of the project: ``xfer transfer``, studies and reports all call it. Pure
pandas/numpy over two frames of the :mod:`~xfer.evaluate.contract`: ``results`` (one row per
final fit) and ``days`` (``predictions.parquet``: one row per test day of every fit and
baseline). No Ray, no W&B.

Every comparison is paired **day by day** on the same test days, seed by seed where both sides
have seeds, and tested with :func:`xfer.evaluate.inference.paired_day_test` (a long-run
variance of the day differences plus the seeds' variance, Student t): the walk-forward test
blocks are pooled in time order, so the interval is about which days happened, not only which
seeds ran. Verdicts use the
Holm-adjusted p-value over the table's comparisons.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    BASELINES,
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    POOLED_COLUMNS,
    PREDICTION_COLUMNS,
    RESULTS_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.evaluate.inference import (
    DayTest,
    _seed_variance,
    adjust_pvalues,
    detectable_effect,
    paired_day_test,
    required_fraction_days,
    verdict_from,
)
from xfer.evaluate.pooled import pooled_effect
from xfer.evaluate.sizing import monotone_sizing

ALPHA = 0.05
"""Level of the verdicts (on the adjusted p-value) and 1 - level of the delta intervals."""
ADJUSTMENT = "holm"
POWER = 0.8
"""Power at which ``detectable_effect`` is stated (verdicts, comparisons, pooled)."""
"""Multiplicity adjustment across a table's comparisons: Holm (family-wise error rate)."""
ALL_BASELINES = frozenset(b for bs in BASELINES.values() for b in bs)
CELL_KEYS = ["pair", "source", "target", "chain", "strategy", "fraction", "dann_weight"]


class StaleTableError(XferInputError):
    """A results table lacks columns this version needs (written by an older xfer)."""


def require_columns(frame: pd.DataFrame, needed: Iterable[str], what: str) -> None:
    """Raise :class:`StaleTableError` naming the missing columns of ``what`` (a file or table)."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise StaleTableError(
            file=what, field="columns", expected=f"the columns of this xfer's contract ({', '.join(missing)})",
            found=f"a table without {', '.join(missing)}",
            hint="written by an older xfer (before day-level verdicts); re-run the study into a new directory")


# ----------------------------------------------------------------------- day matrices


class DayColumns(NamedTuple):
    """The columns a :class:`Days` reads, as numpy arrays: read from a frame once, then any
    group's taken by positions (a pandas group copies every column, the strings included)."""

    seed: np.ndarray
    row: np.ndarray
    score: np.ndarray
    horizon: np.ndarray
    date: np.ndarray | None

    @classmethod
    def of(cls, g: pd.DataFrame) -> DayColumns:
        return cls(g["seed"].to_numpy(), g["row"].to_numpy(), g["score"].to_numpy(np.float64),
                   g["horizon"].to_numpy(), g["date"].to_numpy() if "date" in g else None)

    def take(self, at: np.ndarray) -> DayColumns:
        return DayColumns(*(None if a is None else a[at] for a in self))


class Days:
    """One model's (or baseline's) test days as a ``(n_seeds, n_days)`` score matrix.

    The matrix is what ``pivot_table(index="seed", columns="row", values="score",
    aggfunc="mean")`` gives, bit for bit (tests/evaluate/test_days_matrix.py), built with numpy:
    the pivot was most of the tables' time.
    """

    def __init__(self, g: pd.DataFrame | DayColumns) -> None:
        c = g if isinstance(g, DayColumns) else DayColumns.of(g)
        self.seeds, self.rows, self.x = _seed_day_matrix(c.seed, c.row, c.score)
        self.horizon = int(c.horizon.max())
        self.dates = (_first_dates(c.row, c.date, self.rows) if c.date is not None
                      else np.array([], dtype="datetime64[ns]"))

    @property
    def mean(self) -> float:
        return float(np.nanmean(np.nanmean(self.x, axis=0))) if self.x.size else math.nan

    def on(self, rows: np.ndarray) -> np.ndarray:
        """The matrix restricted to ``rows`` (a subset of this one's rows, in order)."""
        return self.x[:, np.searchsorted(self.rows, rows)]


def _seed_day_matrix(seed: np.ndarray, row: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sorted seeds, sorted rows and the mean score of each (seed, row), NaN where it has none;
    seeds and rows without a single non-NaN mean dropped (pivot_table's ``dropna``)."""
    ok = ~np.isnan(score)
    seeds, si = np.unique(seed[ok], return_inverse=True)
    rows, ri = np.unique(row[ok], return_inverse=True)
    x = _group_means(si * len(rows) + ri, score[ok], len(seeds) * len(rows)).reshape(len(seeds), len(rows))
    have = ~np.isnan(x)
    keep_s, keep_r = have.any(axis=1), have.any(axis=0)
    return seeds[keep_s], rows[keep_r], x[np.ix_(keep_s, keep_r)]


def _group_means(label: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """pandas' group mean (``group_mean``: a Kahan-compensated sum in row order, over the count),
    so duplicated entries average to the same bits; one vectorised step per duplicate rank."""
    order = np.argsort(label, kind="stable")
    lab = label[order]
    pos = np.arange(len(lab))
    rank = pos - np.maximum.accumulate(np.where(np.r_[True, lab[1:] != lab[:-1]], pos, 0))
    total, comp, count = np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(int(rank.max()) + 1 if len(rank) else 0):
        at = order[rank == k]
        g = label[at]
        y = value[at] - comp[g]
        t = total[g] + y
        with np.errstate(invalid="ignore"):
            c = t - total[g] - y
        comp[g] = np.where(np.isnan(c), 0.0, c)  # an infinite value: pandas resets the compensation
        total[g] = t
        count[g] += 1
    out = np.full(n, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _first_dates(row: np.ndarray, date: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each of ``rows``' first non-missing date (groupby ``first``), NaT where it has none."""
    ok = ~np.isnat(date)
    have, first = np.unique(row[ok], return_index=True)
    pos = np.minimum(np.searchsorted(have, rows), max(len(have) - 1, 0))
    hit = have[pos] == rows if len(have) else np.zeros(len(rows), dtype=bool)
    out = np.full(len(rows), np.datetime64("NaT"), dtype=date.dtype)
    out[hit] = date[ok][first[pos[hit]]]
    return out


def paired(a: Days, b: Days) -> np.ndarray:
    """``a - b`` on their common days: seed by seed where both have the seeds, else ``a``'s seeds
    against ``b``'s seed mean (a baseline has one "seed")."""
    rows = np.intersect1d(a.rows, b.rows)
    xa, xb = a.on(rows), b.on(rows)
    common = np.intersect1d(a.seeds, b.seeds)
    if len(b.seeds) > 1 and len(common) == len(a.seeds):
        return xa - xb[np.searchsorted(b.seeds, a.seeds)]
    return xa - np.nanmean(xb, axis=0, keepdims=True)


def test_pair(a: Days, b: Days) -> DayTest:
    """The paired day-level test of ``a`` against ``b`` (higher scores = better; the default method
    of :func:`~xfer.evaluate.inference.paired_day_test`, whose p-values have no resampling floor)."""
    return paired_day_test(paired(a, b), horizon=max(a.horizon, b.horizon), level=1 - ALPHA)


def _detectable(out: pd.DataFrame, tested: pd.Series | None = None) -> pd.Series:
    """Each row's effect found with :data:`POWER` power at the table's Holm level: its first
    (strictest) step, ``ALPHA / m``, so the figure holds for any row of the table."""
    mask = pd.Series(True, index=out.index) if tested is None else tested
    m = max(int(out.loc[mask, "p_value"].notna().sum()), 1)
    res = [detectable_effect(se, df, ALPHA / m, POWER) if ok else math.nan
           for se, df, ok in zip(out["_se"], out["_df"], mask, strict=True)]
    return pd.Series(res, index=out.index, dtype=float)


def _groups(days: pd.DataFrame, keys: list[str]) -> dict[tuple[Any, ...], Days]:
    """Each group's :class:`Days` by its positions: the day columns are read once, not copied
    with every other column into a frame per group."""
    cols = DayColumns.of(days)
    return {k if isinstance(k, tuple) else (k,): Days(cols.take(at))
            for k, at in days.groupby(keys, sort=True).indices.items()}


# ----------------------------------------------------------------------- verdicts


def _baselines_of(days: pd.DataFrame) -> dict[tuple[str, float], dict[str, Days]]:
    """Per (pair, fraction): each baseline's days (baselines do not depend on chain or DANN)."""
    base = days[days["strategy"].isin(ALL_BASELINES)].drop_duplicates(["pair", "strategy", "fraction", "row"])
    out: dict[tuple[str, float], dict[str, Days]] = {}
    for (pair, frac, name), g in base.groupby(["pair", "fraction", "strategy"], sort=True):
        out.setdefault((pair, frac), {})[str(name)] = Days(g)
    return out


def verdicts(results: pd.DataFrame, days: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (scratch included) with its test score, scratch, the baselines, and the
    paired day-level verdict against scratch (Holm-adjusted over the table's cells)."""
    if days.empty:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    require_columns(days, PREDICTION_COLUMNS, "predictions")
    metric = str(results["metric"].iloc[0]) if len(results) and "metric" in results else "score"
    models = days[~days["strategy"].isin(ALL_BASELINES)]
    cells = _groups(models, CELL_KEYS)
    baselines = _baselines_of(days)
    # scratch does not depend on the source, the chain or DANN: one per (pair, fraction)
    scratch = {(k[0], k[5]): v for k, v in sorted(cells.items(), key=lambda kv: kv[0][3] != "direct")
               if k[4] == "scratch"}
    rows: list[dict[str, Any]] = []
    for key, cell in cells.items():
        k = dict(zip(CELL_KEYS, key, strict=True))
        sc = scratch.get((k["pair"], k["fraction"]))
        row: dict[str, Any] = {**k, "metric": metric, "test_score": cell.mean,
                               "scratch_score": sc.mean if sc else math.nan,
                               "n_days": cell.x.shape[1], "n_seeds": cell.x.shape[0]}
        if k["strategy"] == "scratch":
            row.update(delta=0.0, delta_ci_low=0.0, delta_ci_high=0.0, p_value=math.nan, verdict="baseline",
                       block_length=math.nan, _se=math.nan, _df=math.nan)
        elif sc is None:
            row.update(delta=math.nan, delta_ci_low=math.nan, delta_ci_high=math.nan, p_value=math.nan,
                       verdict="inconclusive", block_length=math.nan, _se=math.nan, _df=math.nan)
        else:
            row.update(_test_columns(test_pair(cell, sc)))
        row.update(_against_baselines(cell, baselines.get((k["pair"], k["fraction"]), {})))
        rows.append(row)
    out = pd.DataFrame(rows)
    tested = out["strategy"] != "scratch"
    out["p_adjusted"] = math.nan
    out.loc[tested, "p_adjusted"] = adjust_pvalues(out.loc[tested, "p_value"].to_numpy(), ADJUSTMENT)
    out["adjustment"] = ADJUSTMENT
    out["n_comparisons"] = int(out.loc[tested, "p_value"].notna().sum())
    out.loc[tested, "verdict"] = [verdict_from(d, p, ALPHA) for d, p in
                                  zip(out.loc[tested, "delta"], out.loc[tested, "p_adjusted"], strict=True)]
    out["detectable_effect"] = _detectable(out, tested)
    extra = sorted(c for c in out.columns if c.startswith("baseline_") and c.endswith("_score"))
    return out[[*VERDICT_COLUMNS, *extra]].reset_index(drop=True)


def _test_columns(t: DayTest) -> dict[str, Any]:
    return {"delta": t.estimate, "delta_ci_low": t.ci_low, "delta_ci_high": t.ci_high, "p_value": t.p_value,
            "block_length": t.block_length, "n_days": t.n_days, "_se": t.se, "_df": t.df}


def _against_baselines(cell: Days, base: dict[str, Days]) -> dict[str, Any]:
    """Each baseline's score on the cell's days, the best one, and the paired test against it."""
    out: dict[str, Any] = {f"baseline_{n}_score": float(np.nanmean(b.on(np.intersect1d(cell.rows, b.rows))))
                           for n, b in base.items()}
    if not base:
        return {**out, "best_baseline": "", "best_baseline_score": math.nan, "delta_vs_baseline": math.nan,
                "delta_vs_baseline_ci_low": math.nan, "delta_vs_baseline_ci_high": math.nan,
                "beats_baseline": False}
    name = max(base, key=lambda n: out[f"baseline_{n}_score"])
    t = test_pair(cell, base[name])
    return {**out, "best_baseline": name, "best_baseline_score": out[f"baseline_{name}_score"],
            "delta_vs_baseline": t.estimate, "delta_vs_baseline_ci_low": t.ci_low,
            "delta_vs_baseline_ci_high": t.ci_high, "beats_baseline": bool(t.estimate > 0)}


# ----------------------------------------------------------------------- curves and sizing


def curves(days: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean day score against fraction per (pair, chain, DANN, strategy), baselines included,
    with a 90% day-level block-bootstrap band."""
    if days.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    keys = ["pair", "source", "target", "chain", "strategy", "dann_weight", "fraction"]
    rows = []
    for key, d in _groups(days.drop_duplicates([*keys, "seed", "row"]), keys).items():
        t = paired_day_test(d.x, horizon=d.horizon, level=0.9)
        rows.append({**dict(zip(keys, key, strict=True)), "metric": metric or "score", "mean": d.mean,
                     "ci_low": t.ci_low, "ci_high": t.ci_high, "n": d.x.shape[1]})
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


MONOTONE_COLUMNS = ("monotone_fraction", "monotone_ci_low", "monotone_ci_high")
"""Extra sizing columns: the required fraction of the monotone sizing curve
(:func:`xfer.evaluate.sizing.monotone_sizing`: isotonic fit, 90% joint band) beside the
first-passage statistic of the contract columns."""


def _full_scratch(models: pd.DataFrame) -> dict[Any, Days]:
    """Per pair, scratch at its largest fraction (in the pair's first chain): the sizing reference,
    built once per pair rather than filtered out of every row for each curve."""
    out = {}
    for pair, sc in models[models["strategy"] == "scratch"].groupby("pair", sort=False):
        sc = sc[sc["chain"] == sc["chain"].iloc[0]]
        out[pair] = Days(sc[sc["fraction"] == sc["fraction"].max()])
    return out


def sizing(days: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Required fraction per strategy: where its curve first reaches scratch at the largest
    fraction, with an interval from the same day-level resampling (all fractions jointly); and
    the monotone curve's estimate (:data:`MONOTONE_COLUMNS`)."""
    models = days[~days["strategy"].isin(ALL_BASELINES)]
    if models.empty:
        return pd.DataFrame(columns=[*SIZING_COLUMNS, *MONOTONE_COLUMNS])
    keys = ["pair", "source", "target", "chain", "strategy", "dann_weight"]
    refs = _full_scratch(models)
    cols, fraction = DayColumns.of(models), models["fraction"].to_numpy()
    rows = []
    for key, at in models.groupby(keys, sort=True).indices.items():
        k = dict(zip(keys, key, strict=True))
        ref = refs.get(k["pair"])
        if ref is None:
            continue
        by_frac = {float(f): Days(cols.take(at[fraction[at] == f])) for f in np.unique(fraction[at])}
        common = ref.rows
        for d in by_frac.values():
            common = np.intersect1d(common, d.rows)
        curve = {f: d.on(common) for f, d in by_frac.items()}
        rf = required_fraction_days(curve, ref.on(common), horizon=ref.horizon)
        try:
            mono = monotone_sizing(curve, ref.on(common), horizon=ref.horizon, level=0.9)
            mono_cols = {"monotone_fraction": mono.point, "monotone_ci_low": mono.ci_low,
                         "monotone_ci_high": mono.ci_high}
        except ValueError:  # too few common days for a band
            mono_cols = dict.fromkeys(MONOTONE_COLUMNS, math.nan)
        rows.append({**k, "metric": metric or "score", "required_fraction": rf.point, "ci_low": rf.ci_low,
                     "ci_high": rf.ci_high, "reached_share": rf.reached_share,
                     "rule_of_thumb": RULE_OF_THUMB.get(k["strategy"], ""), **mono_cols})
    return pd.DataFrame(rows, columns=[*SIZING_COLUMNS, *MONOTONE_COLUMNS])


# ----------------------------------------------------------------------- pooled across targets


def _target_effect(cell: Days, ref: Days) -> tuple[pd.Series, float]:
    """One target's seed-averaged paired day differences indexed by date, and the variance its
    training seeds add to their mean (:func:`~xfer.evaluate.inference._seed_variance`)."""
    rows = np.intersect1d(cell.rows, ref.rows)
    arr = paired(cell, ref)
    x = np.nanmean(arr, axis=0)
    dates = cell.dates[np.searchsorted(cell.rows, rows)]
    window = max(1, 2 * max(cell.horizon, ref.horizon))
    seed_var = _seed_variance(arr, x, window) if arr.shape[0] > 1 else 0.0
    return pd.Series(x, index=pd.DatetimeIndex(dates)).groupby(level=0).mean(), seed_var


def pooled(days: pd.DataFrame, groups: dict[str, str] | None = None, metric: str | None = None) -> pd.DataFrame:
    """Random-effects pooled effects across targets (:func:`xfer.evaluate.pooled.pooled_effect`).

    Per (strategy, fraction, DANN setting) of the direct pairs, each target's paired day
    differences against scratch (same pair and fraction), against scratch at the pair's largest
    fraction (``scratch_full``: the data-sizing question, pooled) and against each practitioner baseline
    are pooled over every target (group ``all``) and over each group of ``groups`` (target ->
    group, e.g. the asset class) holding 3 or more targets. A target with several pairs (sources)
    contributes its first pair, so no target counts twice. Holm adjusts within each reference
    (``versus``): one family per question.
    """
    if days.empty or "date" not in days:
        return pd.DataFrame(columns=list(POOLED_COLUMNS))
    models = days[~days["strategy"].isin(ALL_BASELINES) & (days["chain"] == "direct")]
    first_pair = models.drop_duplicates("target").set_index("target")["pair"]
    models = models[models["pair"].isin(set(first_pair))]
    cells = _groups(models, CELL_KEYS)
    baselines = _baselines_of(days[days["pair"].isin(set(first_pair))])
    scratch = {(k[0], k[5]): v for k, v in cells.items() if k[4] == "scratch"}
    effects: dict[tuple[str, float, float, str], dict[str, tuple[pd.Series, float]]] = {}
    for key, cell in cells.items():
        k = dict(zip(CELL_KEYS, key, strict=True))
        refs = {f"baseline:{n}": b for n, b in baselines.get((k["pair"], k["fraction"]), {}).items()}
        if k["strategy"] != "scratch" and (k["pair"], k["fraction"]) in scratch:
            refs["scratch"] = scratch[(k["pair"], k["fraction"])]
        full = max((f for p, f in scratch if p == k["pair"]), default=None)
        if full is not None and (k["strategy"] != "scratch" or k["fraction"] != full):
            refs["scratch_full"] = scratch[(k["pair"], full)]  # the sizing question: reach full-data scratch?
        for versus, ref in refs.items():
            slot = (str(k["strategy"]), float(k["fraction"]), float(k["dann_weight"]), versus.removeprefix("baseline:"))
            series, seed_var = _target_effect(cell, ref)
            if series.notna().sum() >= 10:  # a handful of dated days pools nothing
                effects.setdefault(slot, {})[str(k["target"])] = (series, seed_var)
    members = {"all": sorted(first_pair.index)}
    for target, group in sorted((groups or {}).items()):
        if target in first_pair.index:
            members.setdefault(str(group), []).append(target)
    members = {g: ts for g, ts in members.items() if len(ts) >= 3 and (g == "all" or ts != members["all"])}
    horizon = int(days["horizon"].max())
    rows = []
    for (strategy, fraction, dann, versus), per_target in sorted(effects.items()):
        for group, targets in members.items():
            have = [t for t in targets if t in per_target]
            if len(have) < 3:
                continue
            d = pd.DataFrame({t: per_target[t][0] for t in have}).sort_index()
            seed_var = pd.Series({t: per_target[t][1] for t in have})
            r = pooled_effect(d, horizon=horizon, level=1 - ALPHA, seed_var=seed_var)
            rows.append({"group": group, "strategy": strategy, "fraction": fraction, "dann_weight": dann,
                         "versus": versus, "metric": metric or "score", "n_targets": r.n_targets,
                         "targets": ",".join(have), "estimate": r.estimate, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "p_value": r.p_value, "tau2": r.tau2, "pi_low": r.pi_low,
                         "pi_high": r.pi_high, "df": r.df, "_se": r.se})
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=list(POOLED_COLUMNS))
    # one family per question (against scratch, against full-data scratch, against each baseline):
    # Holm over every row of every question would make each answer pay for the others
    out["p_adjusted"] = out.groupby("versus")["p_value"].transform(lambda p: adjust_pvalues(p.to_numpy(), ADJUSTMENT))
    out["verdict"] = [verdict_from(e, p, ALPHA) for e, p in zip(out["estimate"], out["p_adjusted"], strict=True)]
    m = out.groupby("versus")["p_value"].transform("size")
    out["detectable_effect"] = [detectable_effect(se, df, ALPHA / k, POWER)
                                for se, df, k in zip(out["_se"], out["df"], m, strict=True)]
    return out[list(POOLED_COLUMNS)]


# ----------------------------------------------------------------------- comparisons


def comparisons(days: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Chain vs direct and DANN vs none, paired day by day and seed by seed (Holm over the table)."""
    models = days[~days["strategy"].isin([*ALL_BASELINES, "scratch"])]
    tests: dict[tuple[Any, ...], dict[tuple[Any, ...], Days]] = {}  # (pair, strategy, fraction) -> its cells
    for (*test, chain, w), d in _groups(models, ["pair", "strategy", "fraction", "chain", "dann_weight"]).items():
        tests.setdefault(tuple(test), {})[(chain, w)] = d
    rows: list[dict[str, Any]] = []
    for (pair, strategy, fraction), cells in tests.items():
        direct = cells.get(("direct", 0.0))

        def add(kind: str, variant: str, a: Days, b: Days, pair: Any = pair, strategy: Any = strategy,
                fraction: Any = fraction) -> None:
            t = test_pair(a, b)
            rows.append({"pair": pair, "kind": kind, "variant": variant, "baseline": "direct" if kind ==
                         "chain_vs_direct" else "none", "strategy": strategy, "fraction": fraction,
                         "metric": metric or "score", **_test_columns(t)})

        for (chain, w), cell in cells.items():
            if w == 0 and chain != "direct" and direct is not None:
                add("chain_vs_direct", str(chain), cell, direct)
            if w > 0 and (chain, 0.0) in cells:
                add("dann_vs_none", f"{w:g}" if chain == "direct" else f"{w:g} ({chain})", cell, cells[(chain, 0.0)])
    out = pd.DataFrame(rows, columns=[*(c for c in COMPARISON_COLUMNS if c not in ("p_adjusted", "verdict",
                                                                              "detectable_effect")), "_se", "_df"])
    out["p_adjusted"] = adjust_pvalues(out["p_value"].to_numpy(), ADJUSTMENT) if len(out) else []
    out["detectable_effect"] = _detectable(out) if len(out) else []
    out["verdict"] = [verdict_from(d, p, ALPHA) for d, p in zip(out["delta"], out["p_adjusted"], strict=True)]
    return out[list(COMPARISON_COLUMNS)]


def compare_days(a: pd.DataFrame, b: pd.DataFrame, strategy: str, fraction: float | None = None) -> DayTest:
    """Paired day-level test of ``b - a`` for one strategy (e.g. chain vs direct, DANN vs none),
    over every fraction both ran (or just ``fraction``): same target rows, test days and seeds."""
    a, b = a[a["strategy"] == strategy], b[b["strategy"] == strategy]
    fracs = sorted(set(a["fraction"]) & set(b["fraction"]))
    if fraction is not None:
        fracs = [f for f in fracs if f == fraction]
    if not fracs:
        raise ValueError(f"No fraction of strategy {strategy!r} is in both runs "
                         f"(asked for {fraction!r}); nothing to compare.")
    d = np.hstack([paired(Days(b[b["fraction"] == f]), Days(a[a["fraction"] == f])) for f in fracs])
    return paired_day_test(d, horizon=int(max(a["horizon"].max(), b["horizon"].max())), level=1 - ALPHA)


def cell_means(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell, the mean of every regime, importance and domain column (NaN-only columns dropped)."""
    cols = [c for c in results.columns if c.startswith(("regime_", "importance_"))]
    cols += [c for c in ("domain_acc", "domain_probe_acc") if c in results]
    cols = [c for c in cols if results[c].notna().any()]
    return results.groupby(keys, sort=False)[cols].mean().reset_index() if cols else results[keys].drop_duplicates()


PARALLEL_DAYS = 1_000_000
"""Above this many prediction rows, :func:`all_tables` computes the tables in two processes. The
second process costs a fresh interpreter and a pickle of the days (~2-3 s): on the benchmark's
1,920-fit study (~420k rows) one process takes 5.2-6.6 s and two take 8.6-8.8 s, so only a
study several times larger gains from it."""


def _band_tables(days: pd.DataFrame, metric: str | None) -> dict[str, pd.DataFrame]:
    return {"curves": curves(days, metric), "sizing": sizing(days, metric), "comparisons": comparisons(days, metric)}


def _band_child() -> None:
    """Entry point of the second process (``python -c``): ``argv[1]`` is a directory holding
    ``in.pkl`` (the days and the metric); it writes ``out.pkl`` (the band tables)."""
    work = Path(sys.argv[1])
    days, metric = pd.read_pickle(work / "in.pkl")
    pd.to_pickle(_band_tables(days, metric), work / "tmp.pkl")
    os.replace(work / "tmp.pkl", work / "out.pkl")


def _start_band_child(days: pd.DataFrame, metric: str | None, work: Path) -> subprocess.Popen[bytes]:
    """Start a fresh interpreter on :func:`_band_child`. Not ``multiprocessing``: its spawned
    child re-imports the caller's ``__main__``, so a script that calls a study without an
    ``if __name__ == "__main__"`` guard would start the study again inside it. Pickle files keep
    every dtype and value exact."""
    pd.to_pickle((days, metric), work / "in.pkl")
    code = "from xfer.evaluate.tables import _band_child; _band_child()"
    return subprocess.Popen([sys.executable, "-c", code, str(work)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def all_tables(results: pd.DataFrame, days: pd.DataFrame,
               groups: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Every table of a study directory from its fits and their test days.

    The tables are bootstrap work on independent seeds (each test has its own), so a large study
    computes the curves, sizing and comparisons in a second process while this one does the
    verdicts; the numbers are the same either way (tests/evaluate/test_tables.py). If the second
    process fails, this one computes them itself.
    """
    if len(results):
        require_columns(results, RESULTS_COLUMNS, "results")
    metric = str(results["metric"].iloc[0]) if len(results) else None
    out = {"results": results, "predictions": days}
    if len(days) < PARALLEL_DAYS or (os.cpu_count() or 1) < 2:
        return {**out, "verdicts": verdicts(results, days), **_band_tables(days, metric),
                "pooled": pooled(days, groups, metric)}
    with tempfile.TemporaryDirectory(prefix="xfer-tables-") as tmp:
        child = _start_band_child(days, metric, Path(tmp))
        try:
            out["verdicts"] = verdicts(results, days)
            out["pooled"] = pooled(days, groups, metric)
        finally:
            _, err = child.communicate()
        done = Path(tmp) / "out.pkl"
        if child.returncode == 0 and done.is_file():
            return {**out, **pd.read_pickle(done)}
    out.setdefault("pooled", pooled(days, groups, metric))
    warnings.warn(f"the second table process failed (exit {child.returncode}: "
                  f"{err.decode(errors='replace').strip()[-300:]}); computing its tables here", stacklevel=2)
    return {**out, **_band_tables(days, metric)}
