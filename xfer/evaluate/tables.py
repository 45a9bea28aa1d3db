"""From per-fit rows to the result tables: verdicts, curves, required fractions, comparisons.

The one aggregation of the project: ``xfer transfer`` and studies both call it. Pure pandas
over fit rows with the :data:`~xfer.evaluate.contract.RESULTS_COLUMNS` (see
:mod:`xfer.evaluate.contract`); no Ray, no W&B. Every comparison is paired on (seed, fold):
same target rows, same test block.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xfer.evaluate.contract import (
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.evaluate.metrics import HIGHER_IS_BETTER
from xfer.evaluate.verdict import Verdict, delta_verdict, required_fraction

PAIR_KEY = ["seed", "fold"]


def _paired(a: pd.DataFrame, b: pd.DataFrame, col: str) -> np.ndarray:
    x = a.set_index(PAIR_KEY)[col]
    y = b.set_index(PAIR_KEY)[col]
    xa, yb = x.align(y, join="inner")
    return (xa - yb).to_numpy()


def verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """One row per transfer cell against scratch on the same pair and fraction."""
    rows = []
    if results.empty:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    metric = results["metric"].iloc[0]
    hib = HIGHER_IS_BETTER[metric]
    scratch = results[results["strategy"] == "scratch"]
    keys = ["pair", "source", "target", "chain", "strategy", "fraction", "dann_weight"]
    for key, g in results.groupby(keys, sort=True):
        k = dict(zip(keys, key, strict=True))
        sc = scratch[(scratch["pair"] == k["pair"]) & (scratch["fraction"] == k["fraction"])]
        row = {**k, "metric": metric, "test_score": float(g["test_score"].mean()),
               "scratch_score": float(sc["test_score"].mean()) if len(sc) else float("nan")}
        if k["strategy"] == "scratch":
            row.update(delta=0.0, delta_ci_low=0.0, delta_ci_high=0.0, verdict="baseline", n_pairs=len(g))
        else:
            d = _paired(g, sc, "test_score")
            v = delta_verdict(d, higher_is_better=hib)
            row.update(delta=v.mean, delta_ci_low=v.ci_low, delta_ci_high=v.ci_high, verdict=v.verdict, n_pairs=v.n)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def curves(results: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Test metric against fraction per (pair, chain, DANN, strategy), with a 90% bootstrap band."""
    rows = []
    rng = np.random.default_rng(seed)
    keys = ["pair", "source", "target", "chain", "strategy", "dann_weight", "fraction"]
    for key, g in results.groupby(keys, sort=True):
        v = g["test_score"].to_numpy(np.float64)
        boots = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
        lo, hi = np.quantile(boots, [0.05, 0.95])
        rows.append({**dict(zip(keys, key, strict=True)), "metric": g["metric"].iloc[0],
                     "mean": float(v.mean()), "ci_low": float(lo), "ci_high": float(hi), "n": len(v)})
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def sizing(results: pd.DataFrame) -> pd.DataFrame:
    """Required fraction per strategy: where its curve first reaches scratch at full data."""
    rows = []
    if results.empty:
        return pd.DataFrame(columns=list(SIZING_COLUMNS))
    metric = results["metric"].iloc[0]
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    keys = ["pair", "source", "target", "chain", "strategy", "dann_weight"]
    for key, g in results.groupby(keys, sort=True):
        k = dict(zip(keys, key, strict=True))
        sc = results[(results["strategy"] == "scratch") & (results["pair"] == k["pair"])]
        if sc.empty:
            continue
        ref = sign * sc[sc["fraction"] == sc["fraction"].max()]["test_score"].to_numpy()
        curve = {float(f): sign * gg["test_score"].to_numpy() for f, gg in g.groupby("fraction")}
        rf = required_fraction(curve, ref)
        rows.append({**k, "metric": metric, "required_fraction": rf.point, "ci_low": rf.ci_low,
                     "ci_high": rf.ci_high, "reached_share": rf.reached_share,
                     "rule_of_thumb": RULE_OF_THUMB.get(k["strategy"], "")})
    return pd.DataFrame(rows, columns=list(SIZING_COLUMNS))


def comparisons(results: pd.DataFrame) -> pd.DataFrame:
    """Chain vs direct and DANN vs none, paired on (seed, fold)."""
    rows = []
    if results.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    metric = results["metric"].iloc[0]
    hib = HIGHER_IS_BETTER[metric]
    base_keys = ["pair", "strategy", "fraction"]
    transfer = results[results["strategy"] != "scratch"]

    def add(kind: str, variant: str, baseline: str, a: pd.DataFrame, b: pd.DataFrame, k: dict) -> None:
        v = delta_verdict(_paired(a, b, "test_score"), higher_is_better=hib)
        rows.append({"pair": k["pair"], "kind": kind, "variant": variant, "baseline": baseline,
                     "strategy": k["strategy"], "fraction": k["fraction"], "metric": metric,
                     "delta": v.mean, "delta_ci_low": v.ci_low, "delta_ci_high": v.ci_high, "verdict": v.verdict,
                     "n_pairs": v.n})

    for key, g in transfer.groupby(base_keys, sort=True):
        k = dict(zip(base_keys, key, strict=True))
        direct = g[(g["chain"] == "direct") & (g["dann_weight"] == 0)]
        for chain, gc in g[(g["chain"] != "direct") & (g["dann_weight"] == 0)].groupby("chain"):
            if len(direct):
                add("chain_vs_direct", str(chain), "direct", gc, direct, k)
        for (chain, w), gd in g[g["dann_weight"] > 0].groupby(["chain", "dann_weight"]):
            plain = g[(g["chain"] == chain) & (g["dann_weight"] == 0)]
            if len(plain):
                add("dann_vs_none", f"{w:g}" if chain == "direct" else f"{w:g} ({chain})", "none", gd, plain, k)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def compare_fits(a: pd.DataFrame, b: pd.DataFrame, strategy: str, fraction: float | None = None) -> Verdict:
    """Paired verdict of ``b - a`` for one strategy (e.g. chain vs direct, DANN vs none).

    Fits are paired on (fraction, seed, fold): same target rows, same test block.
    """
    metric = a["metric"].iloc[0]
    key = ["strategy", "fraction", "seed", "fold"]
    xa, xb = a.set_index(key)["test_score"].align(b.set_index(key)["test_score"], join="inner")
    d = (xb - xa).xs(strategy, level="strategy")
    if fraction is not None:
        d = d.xs(fraction, level="fraction")
    return delta_verdict(d.to_numpy(), higher_is_better=HIGHER_IS_BETTER[metric])


def cell_means(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per cell, the mean of every regime, importance and domain column (NaN-only columns dropped)."""
    cols = [c for c in results.columns if c.startswith(("regime_", "importance_"))]
    cols += [c for c in ("domain_acc", "domain_probe_acc") if c in results]
    cols = [c for c in cols if results[c].notna().any()]
    return results.groupby(keys, sort=False)[cols].mean().reset_index() if cols else results[keys].drop_duplicates()
