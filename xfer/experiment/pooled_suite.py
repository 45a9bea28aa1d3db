"""The pooled suite of the calibration: do pooled intervals across targets cover, with trained models?

A replication is a *study over K targets*: K new targets of one generator (each its own sample,
the same calendar days), each a full experiment against the suite's source, and per tested
(strategy, fraction) the random-effects pooled estimate of :func:`xfer.evaluate.pooled.pooled_effect`
over the K targets' day differences against scratch, exactly as ``pooled.parquet`` forms them
(:func:`xfer.evaluate.tables._target_effect`).

Two truths:

* **null**: martingale-difference targets (the null suite's), return target: every true effect
  is exactly 0, so a pooled verdict whose interval excludes 0 is false;
* **coverage**: targets of the "shared" pair. The pooled interval is for ``mu``, the mean effect
  over the population of targets *and* trainings that such a study samples from; its oracle is
  the grand mean of every target's own oracle effect (fresh-sample, as for the single-target
  verdicts) over all replications of the suite (K x replications targets; its standard error is
  reported beside it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from xfer.evaluate import tables as T
from xfer.evaluate.pooled import pooled_effect

from .summaries import Rate, rate, tested_cells


def target_rows(days: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per tested (strategy, fraction) of one target: its day differences against scratch
    (dates and values, as lists) and the variance its seeds add, beside the table's row."""
    out = []
    for st, frac, cell, scratch in tested_cells(days):
        series, seed_var = T._target_effect(cell, scratch)
        out.append({"strategy": st, "fraction": frac, "effect_dates": series.index.asi8.tolist(),
                    "effect_days": series.to_numpy().tolist(), "seed_var": seed_var})
    return table.merge(pd.DataFrame(out), on=["strategy", "fraction"], how="left")


def pooled_rows(rows: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """One pooled estimate per (replication, strategy, fraction) from the per-target rows."""
    out = []
    for (rep, st, frac), g in rows.groupby(["pooled_rep", "strategy", "fraction"]):
        cols = {f"t{i}": pd.Series(d, index=pd.DatetimeIndex(np.asarray(t, dtype="datetime64[ns]")))
                for i, (t, d) in enumerate(zip(g["effect_dates"], g["effect_days"], strict=True))}
        frame = pd.DataFrame(cols).sort_index()
        seed_var = pd.Series(g["seed_var"].to_numpy(), index=list(cols))
        r = pooled_effect(frame, horizon=horizon, seed_var=seed_var)
        out.append({"replication": rep, "strategy": st, "fraction": frac, "estimate": r.estimate,
                    "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value, "tau2": r.tau2,
                    "df": r.df, "n_targets": r.n_targets,
                    "mean_oracle": float(g["oracle"].mean()) if "oracle" in g else math.nan})
    return pd.DataFrame(out)


def pooled_summary(null_rows: pd.DataFrame | None, cov_rows: pd.DataFrame | None, horizon: int) -> dict[str, Any]:
    """Null false-verdict rate, KS of the null p-values, and coverage of the grand-mean oracle."""
    from scipy import stats

    out: dict[str, Any] = {}
    if null_rows is not None and len(null_rows):
        p = pooled_rows(null_rows, horizon)
        out["null"] = rate(p["p_value"] < T.ALPHA)
        out["null_ks_p"] = float(stats.kstest(p["p_value"], "uniform").pvalue)
        out["null_estimates"] = len(p)
        out["targets"] = int(p["n_targets"].iloc[0])
    if cov_rows is not None and len(cov_rows):
        p = pooled_rows(cov_rows, horizon)
        cells = {}
        for (st, frac), g in p.groupby(["strategy", "fraction"]):
            target_oracles = cov_rows[(cov_rows["strategy"] == st) & (cov_rows["fraction"] == frac)]["oracle"]
            mu = float(target_oracles.mean())
            cells[f"{st} @ {frac:g}"] = {
                "covered": rate((g["ci_low"] <= mu) & (mu <= g["ci_high"])),
                "covered_own": rate((g["ci_low"] <= g["mean_oracle"]) & (g["mean_oracle"] <= g["ci_high"])),
                "mu": mu, "mu_se": float(target_oracles.std(ddof=1) / math.sqrt(len(target_oracles))),
                "mean_estimate": float(g["estimate"].mean()), "sd_estimate": float(g["estimate"].std(ddof=1)),
                "mean_half_width": float(((g["ci_high"] - g["ci_low"]) / 2).mean()),
                "positive": rate(g["ci_low"] > 0), "mean_tau": float(np.sqrt(g["tau2"]).mean())}
        out["cells"] = cells
        out["coverage"] = Rate(sum(v["covered"].k for v in cells.values()), sum(v["covered"].n for v in cells.values()))
    return out
