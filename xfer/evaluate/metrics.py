"""Metrics a quant expects, per target type.

Volatility target (log annualised realised vol): R^2, QLIKE (on variance), MSE.
Return target: IC (Pearson), rank IC (Spearman), directional accuracy, and the Sharpe
ratio of a sign strategy net of a per-market cost in basis points; ICIR is computed over
folds by the caller (:func:`icir`).

Each target has one *primary* descriptive metric (``r2`` for volatility, ``ic`` for returns);
verdicts, curves and required fractions use the per-day verdict metrics of
:mod:`xfer.evaluate.scores` instead (``r2_oos``, ``skill``), which the within-block IC is not
fit for: demeaned over a ~250-day block it is biased upwards for persistent predictors.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

PRIMARY = {"volatility": "r2", "return": "ic"}
HIGHER_IS_BETTER = {"r2_oos": True, "skill": True, "r2": True, "qlike": False, "mse": False, "ic": True, "rank_ic": True,
                    "hit_rate": True, "sharpe_net": True}


def r2(y: np.ndarray, p: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - p) ** 2)) / ss if ss > 0 else float("nan")


def qlike(y_logvol: np.ndarray, p_logvol: np.ndarray) -> float:
    """QLIKE loss on variances: mean(s2/h2 - log(s2/h2) - 1); 0 = perfect, robust to noisy proxies."""
    ratio = np.exp(2.0 * (y_logvol - p_logvol))
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def volatility_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"r2": r2(y, p), "qlike": qlike(y, p), "mse": float(np.mean((y - p) ** 2))}


def sign_sharpe(y: np.ndarray, p: np.ndarray, cost_bps: float, horizon: int = 1) -> float:
    """Annualised Sharpe of holding sign(prediction), paying ``cost_bps`` per unit turnover."""
    pos = np.sign(p)
    turnover = np.abs(np.diff(pos, prepend=0.0))
    pnl = pos * y - turnover * cost_bps * 1e-4
    sd = pnl.std()
    return float(pnl.mean() / sd * math.sqrt(252.0 / horizon)) if sd > 0 else 0.0


def return_metrics(y: np.ndarray, p: np.ndarray, cost_bps: float = 0.0, horizon: int = 1) -> dict[str, float]:
    const = np.std(p) == 0 or np.std(y) == 0
    ic = 0.0 if const else float(np.corrcoef(y, p)[0, 1])
    ric = 0.0 if const else float(stats.spearmanr(y, p).statistic)
    return {
        "ic": ic,
        "rank_ic": ric,
        "hit_rate": float(np.mean(np.sign(p) == np.sign(y))),
        "sharpe_net": sign_sharpe(y, p, cost_bps, horizon),
        "mse": float(np.mean((y - p) ** 2)),
    }


def compute_metrics(target: str, y: np.ndarray, p: np.ndarray, cost_bps: float = 0.0,
                    horizon: int = 1) -> dict[str, float]:
    """All metrics of a target type on raw-scale labels ``y`` and predictions ``p``."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if target == "volatility":
        return volatility_metrics(y, p)
    if target == "return":
        return return_metrics(y, p, cost_bps, horizon)
    raise ValueError(f"Unknown target {target!r}; valid: {sorted(PRIMARY)}")


def icir(ics: list[float]) -> float:
    """Information coefficient information ratio: mean IC over folds / its std."""
    a = np.asarray(ics, dtype=np.float64)
    return float(a.mean() / a.std(ddof=1)) if len(a) > 1 and a.std(ddof=1) > 0 else float("nan")
