"""Summaries of the calibration suites: exact binomial rates, null, coverage and power figures."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from xfer.evaluate import tables as T


def tested_cells(days: pd.DataFrame) -> Iterator[tuple[str, float, T.Days, T.Days]]:
    """Every tested (strategy, fraction) of one experiment's day frame: ``(strategy, fraction,
    cell days, scratch days at that fraction)``, baselines left out."""
    models = days[~days["strategy"].isin(T.ALL_BASELINES)]
    for frac, g in models.groupby("fraction"):
        scratch = T.Days(g[g["strategy"] == "scratch"])
        for st, c in g[g["strategy"] != "scratch"].groupby("strategy"):
            yield str(st), float(frac), T.Days(c), scratch


@dataclass(frozen=True)
class Rate:
    """``k`` events out of ``n`` with the exact (Clopper-Pearson) binomial 95% interval."""

    k: int
    n: int

    @property
    def share(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        if not self.n:
            return (math.nan, math.nan)
        ci = binomtest(self.k, self.n).proportion_ci(confidence_level=0.95, method="exact")
        return (float(ci.low), float(ci.high))

    def text(self) -> str:
        lo, hi = self.ci
        return f"{self.k}/{self.n} = {self.share:.1%} (exact 95% CI {lo:.1%} to {hi:.1%})"


def rate(flags: pd.Series | np.ndarray) -> Rate:
    arr = np.asarray(flags, dtype=bool)
    return Rate(int(arr.sum()), int(arr.size))


@dataclass
class SuiteResult:
    """Every replication's verdict rows (scratch rows dropped) and the suite's wall time."""

    name: str
    rows: pd.DataFrame
    seconds: float
    replications: int

    @property
    def seconds_per_replication(self) -> float:
        return self.seconds / max(self.replications, 1)

    @property
    def cpu_per_replication(self) -> float:
        """Mean CPU seconds of one replication (load-independent, unlike the wall time)."""
        if "cpu_s" not in self.rows:
            return math.nan
        return float(self.rows.groupby(["relation", "target_type", "replication"])["cpu_s"].first().mean())


_Z95 = 1.959964
"""The normal 97.5% quantile: half-width / 1.96 is the standard error an interval implies."""


def null_summary(res: SuiteResult) -> dict[str, Any]:
    """False-verdict rates of the null suite (unadjusted 95% and Holm family-wise)."""
    r = res.rows
    false = r["p_value"] < T.ALPHA
    by_rep = r.assign(false=false, adj=r["verdict"] != "inconclusive").groupby("replication")
    per_cell = {f"{st} @ {fr:g}": rate(g["p_value"] < T.ALPHA) for (st, fr), g in r.groupby(["strategy", "fraction"])}
    delta = r["delta"].to_numpy()
    return {
        "verdicts": rate(false), "replications": res.replications,
        "positive": int(((r["p_value"] < T.ALPHA) & (r["delta"] > 0)).sum()),
        "negative": int(((r["p_value"] < T.ALPHA) & (r["delta"] < 0)).sum()),
        "any_unadjusted": rate(by_rep["false"].any()), "holm_familywise": rate(by_rep["adj"].any()),
        "per_cell": per_cell,
        "mean_delta": float(delta.mean()), "mean_delta_se": float(delta.std(ddof=1) / math.sqrt(delta.size)),
        "sd_delta": float(delta.std(ddof=1)), "mean_half_width": float(r["detectable_effect"].mean()),
        "p_uniform_ks": _ks_uniform(r["p_value"].to_numpy()),
        "z_sd": float((delta / (r["detectable_effect"].to_numpy() / _Z95)).std(ddof=1)),
        "day_only": rate(r["day_p"] < T.ALPHA) if "day_p" in r else None,
        "seed_sd": float(r["seed_sd"].mean()) if "seed_sd" in r else math.nan,
        "seed_corr": float(r["seed_corr"].mean()) if "seed_corr" in r else math.nan,
    }


def _ks_uniform(p: np.ndarray) -> float:
    """KS test p-value of the null p-values against U(0, 1) (they are discrete: a rough check)."""
    from scipy.stats import kstest
    return float(kstest(p[np.isfinite(p)], "uniform").pvalue)


def coverage_summary(res: SuiteResult) -> dict[str, Any]:
    """Coverage pooled and per (relation, target type, strategy), with the interval's diagnostics."""
    r = res.rows.assign(err=lambda f: f["delta"] - f["oracle"])

    def diag(g: pd.DataFrame) -> dict[str, Any]:
        return {"covered": rate(g["covered"]), "mean_oracle": float(g["oracle"].mean()),
                "mean_delta": float(g["delta"].mean()), "mean_error": float(g["err"].mean()),
                "sd_error": float(g["err"].std(ddof=1)),
                "implied_sd": float((g["detectable_effect"] / _Z95).mean()),
                "z_sd": float((g["err"] / (g["detectable_effect"] / _Z95)).std(ddof=1)),
                "mean_half_width": float(g["detectable_effect"].mean()),
                "miss_low": int((g["oracle"] < g["delta_ci_low"]).sum()),
                "miss_high": int((g["oracle"] > g["delta_ci_high"]).sum()),
                "mean_oracle_se": float(g["oracle_se"].mean()),
                "day_covered": rate(g["day_covered"]) if "day_covered" in g else None,
                "day_half_width": float(((g["day_ci_high"] - g["day_ci_low"]) / 2).mean()),
                "oracle_seed_sd": float(g["oracle_seed_sd"].mean()), "seed_sd": float(g["seed_sd"].mean()),
                "seed_corr": float(g["seed_corr"].mean())}

    cells = {f"{rel}/{tt}/{st}": diag(g) for (rel, tt, st), g in r.groupby(["relation", "target_type", "strategy"])}
    by_target = {tt: diag(g) for tt, g in r.groupby("target_type")}
    return {"pooled": diag(r), "by_target": by_target, "cells": cells, "replications": res.replications}


def power_summary(res: SuiteResult, relation: str = "shared", target_type: str = "return") -> dict[str, Any]:
    """How often each strategy is called positive on a pair with a real effect."""
    r = res.rows[(res.rows["relation"] == relation) & (res.rows["target_type"] == target_type)]
    out: dict[str, Any] = {}
    for st, g in r.groupby("strategy"):
        out[str(st)] = {"unadjusted": rate(g["delta_ci_low"] > 0), "adjusted": rate(g["verdict"] == "positive"),
                        "negative_unadjusted": rate(g["delta_ci_high"] < 0),
                        "mean_oracle": float(g["oracle"].mean()), "oracle_positive": rate(g["oracle"] > 0)}
    return out
