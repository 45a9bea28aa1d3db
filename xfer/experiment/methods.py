"""Candidate inference methods, scored by the calibration suite on the same difference matrices.

The verdict's method (:data:`xfer.evaluate.inference.DEFAULT_METHOD`) is chosen by numbers, not
by argument: every calibration replication applies each candidate below to the same
seed x day difference matrix of every tested cell, so the candidates differ only in how they
turn those days into an interval. The calibration report then gives, per candidate, the null
false-verdict rate with its exact interval, the KS test of the null p-values, coverage of the
oracle effect (pooled and the worst cell), the KS test of the oracle-centred p-values (the
volatility suite's null), power on the "shared" pair, and the mean half-width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from xfer.evaluate import tables as T
from xfer.evaluate.inference import paired_day_test
from xfer.experiment.summaries import rate, tested_cells

CANDIDATES: dict[str, tuple[str, float | None, str]] = {
    "ewc_0.4": ("ewc", 0.4, "satterthwaite"),
    "ewc_0.2": ("ewc", 0.2, "satterthwaite"),
    "ewc_0.1": ("ewc", 0.1, "satterthwaite"),
    "ewc_0.2_day_df": ("ewc", 0.2, "day_df"),
    "ewc_0.1_day_df": ("ewc", 0.1, "day_df"),
    "ewc_0.2_trained": ("ewc", 0.2, "none"),
    "fixed_b_0.3": ("fixed_b", 0.3, "satterthwaite"),
    "fixed_b_0.5": ("fixed_b", 0.5, "satterthwaite"),
    "bootstrap": ("bootstrap", None, "satterthwaite"),
}
"""name -> (method, smoothing, seeds) of :func:`~xfer.evaluate.inference.paired_day_test`. EWC
``s``: ``nu = s n^(2/3)`` cosines (LLSW's rule is 0.4; smaller = more smoothing, fewer df);
fixed-b ``b``: the Bartlett window as a share of the days; ``bootstrap``: the stationary
bootstrap-t of xfer <= 0.4 (2000 draws, its seed term without df). ``_day_df``: the seed
variance added with the day part's df; ``_trained``: no seed term (the estimand is the effect of
the trained models, exactly what the oracle measures; the others' intervals are for the training
procedure, so against this oracle they are conservative by the seed term)."""


def default_candidate() -> str:
    """The candidate that is the verdicts' default method."""
    from xfer.evaluate.inference import DEFAULT_METHOD, DEFAULT_SEED_TERM, DEFAULT_SMOOTHING

    want = (DEFAULT_METHOD, DEFAULT_SMOOTHING.get(DEFAULT_METHOD), DEFAULT_SEED_TERM)
    return next(name for name, spec in CANDIDATES.items() if spec == want)


def candidate_columns(days: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per tested (strategy, fraction): every candidate's ``<name>_lo``, ``_hi``, ``_p``, ``_se``,
    ``_df`` on the cell's paired difference matrix against scratch (as the verdict table forms it)."""
    out = []
    for st, frac, cell, scratch in tested_cells(days):
        d = T.paired(cell, scratch)
        row: dict[str, Any] = {"strategy": st, "fraction": frac}
        for name, (method, smoothing, seeds) in CANDIDATES.items():
            t = paired_day_test(d, horizon=horizon, level=1 - T.ALPHA, method=method,  # type: ignore[arg-type]
                                smoothing=smoothing, seeds=seeds)  # type: ignore[arg-type]
            row.update({f"{name}_lo": t.ci_low, f"{name}_hi": t.ci_high, f"{name}_p": t.p_value,
                        f"{name}_se": t.se, f"{name}_df": t.df})
        out.append(row)
    return pd.DataFrame(out)


def _centred_p(rows: pd.DataFrame, name: str) -> np.ndarray:
    """p-values of H0: effect = oracle (uniform when the interval is calibrated): the candidate's
    own t reference (the bootstrap's: normal, its critical value unknown here)."""
    est = (rows[f"{name}_lo"] + rows[f"{name}_hi"]) / 2
    z = np.abs(est - rows["oracle"]) / rows[f"{name}_se"]
    df = rows[f"{name}_df"].to_numpy(dtype=float)
    return np.where(np.isfinite(df) & (df < 1e6), 2 * stats.t.sf(z, np.where(np.isfinite(df), df, 1.0)),
                    2 * stats.norm.sf(z))


def _ks(p: np.ndarray) -> float:
    p = p[np.isfinite(p)]
    return float(stats.kstest(p, "uniform").pvalue) if p.size else math.nan


def candidate_summary(null_rows: pd.DataFrame, cov_rows: pd.DataFrame, *, power_relation: str = "shared",
                      power_target: str = "return") -> pd.DataFrame:
    """One row per candidate: the calibration figures that choose the verdict's method."""
    out = []
    for name in CANDIDATES:
        if f"{name}_p" not in null_rows or f"{name}_p" not in cov_rows:
            continue
        nul = null_rows[f"{name}_p"] < T.ALPHA
        cov = cov_rows.assign(covered_c=(cov_rows[f"{name}_lo"] <= cov_rows["oracle"])
                              & (cov_rows["oracle"] <= cov_rows[f"{name}_hi"]))
        cells = cov.groupby(["relation", "target_type", "strategy"])["covered_c"].mean()
        vol = cov[cov["target_type"] == "volatility"]
        pw = cov[(cov["relation"] == power_relation) & (cov["target_type"] == power_target)]
        half = ((cov[f"{name}_hi"] - cov[f"{name}_lo"]) / 2).mean()
        out.append({
            "candidate": name, "null_false": rate(nul), "null_ks_p": _ks(null_rows[f"{name}_p"].to_numpy()),
            "coverage": rate(cov["covered_c"]), "worst_cell": f"{cells.idxmin()[0]}/{cells.idxmin()[1]}/"
            f"{cells.idxmin()[2]} {cells.min():.1%}" if len(cells) else "",
            "worst_cell_rate": float(cells.min()) if len(cells) else math.nan,
            "vol_centred_ks_p": _ks(_centred_p(vol, name)) if len(vol) else math.nan,
            "centred_ks_p": _ks(_centred_p(cov, name)),
            "power": rate(pw[f"{name}_lo"] > 0) if len(pw) else None,
            "mean_half_width": float(half)})
    return pd.DataFrame(out)


def design_summary(res: Any) -> dict[str, Any]:
    """The power cell under one design: test days, power and coverage per candidate, compute."""
    r = res.rows
    out: dict[str, Any] = {"n_days": float(r["n_days"].mean()), "seconds_per_replication": res.seconds_per_replication,
                           "cpu_per_replication": res.cpu_per_replication, "mean_oracle": float(r["oracle"].mean()),
                           "sd_error": float((r["delta"] - r["oracle"]).std(ddof=1)),
                           "by": {}}
    for name in CANDIDATES:
        if f"{name}_lo" in r:
            out["by"][name] = {"power": rate(r[f"{name}_lo"] > 0),
                               "coverage": rate((r[f"{name}_lo"] <= r["oracle"]) & (r["oracle"] <= r[f"{name}_hi"])),
                               "half_width": float(((r[f"{name}_hi"] - r[f"{name}_lo"]) / 2).mean())}
    return out
