"""The practitioner's simple models, fitted on exactly the rows the neural models train on.

A transfer result only means something next to what a quant would use without a network, so
every cell is compared with the :data:`~xfer.evaluate.contract.BASELINES` of its target type:

- volatility (label: next-h-day log annualised realised vol)
  - ``har_rv``: HAR-RV in logs (Corsi 2009), OLS of the label on the log realised vol of the
    last 1, 5 and 22 days (``base.rv_1``, ``base.rv_5``, ``base.rv_22``);
  - ``ewma``: RiskMetrics EWMA vol (``base.ewma``, lambda 0.94) plus one level fitted on the
    training rows (see :func:`_ewma`);
- return (label: next-h-day log return)
  - ``zero``: the zero forecast, the usual hard-to-beat benchmark for returns;
  - ``ridge``: standardised ridge regression on the model's features, alpha chosen on the
    validation rows.

Every parameter is estimated on the training rows only; validation rows only choose ridge's
alpha, and test rows are only predicted. Predictions are on the label's raw scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from xfer.evaluate.contract import BASELINES

HAR_INPUTS = ("base.rv_1", "base.rv_5", "base.rv_22")
"""HAR-RV's daily, weekly and monthly terms, in that order (coefficients b_d, b_w, b_m)."""
EWMA_INPUT = "base.ewma"
RIDGE_ALPHAS = np.logspace(-2, 4, 13)
"""Ridge penalties tried; the one with the lowest validation MSE is kept."""


@dataclass(frozen=True)
class BaselineFit:
    """One baseline's raw-scale predictions on the validation and test rows, and its fit."""

    name: str
    val_pred: np.ndarray
    test_pred: np.ndarray
    info: dict[str, float]
    """Fitted parameters: ``b0, b_d, b_w, b_m`` (har_rv), ``level`` (ewma), ``alpha`` (ridge)."""


def fit_baselines(target_type: str, data: pd.DataFrame, feature_cols: list[str],
                  train: range, val: range, test: range) -> list[BaselineFit]:
    """Fit each baseline of ``target_type`` on the rows ``train`` (positional indices into
    ``data``) and predict the rows ``val`` and ``test``.

    ``data`` holds ``target``, the ``base.*`` columns (volatility) or ``feature_cols``
    (return). Fits come back in :data:`BASELINES` order.
    """
    if target_type not in BASELINES:
        raise ValueError(f"The 'target_type' parameter must be one of {list(BASELINES)}. "
                         f"Got {target_type!r} instead.")
    if len(train) == 0:
        raise ValueError(f"The 'train' parameter must be a non-empty range of rows. Got {train!r} instead.")
    if target_type == "return" and len(val) == 0:
        raise ValueError("The 'val' parameter must be a non-empty range of rows (ridge chooses its "
                         f"alpha there). Got {val!r} instead.")
    for name, rows in (("train", train), ("val", val), ("test", test)):
        if len(rows) and (min(rows) < 0 or max(rows) >= len(data)):
            raise ValueError(f"The '{name}' parameter must index rows 0..{len(data) - 1} of 'data'. "
                             f"Got {rows!r} instead.")
    inputs = [*HAR_INPUTS, EWMA_INPUT] if target_type == "volatility" else list(feature_cols)
    missing = [c for c in ["target", *inputs] if c not in data.columns]
    if missing:
        raise ValueError(f"The 'data' parameter must have the columns {missing}. "
                         f"Got columns {list(data.columns)} instead.")
    used = data[["target", *inputs]].iloc[[*train, *val, *test]].to_numpy(np.float64)
    if not np.isfinite(used).all():
        raise ValueError("The 'data' parameter must be finite on the train, val and test rows of "
                         f"{['target', *inputs]}. Got NaN or inf instead.")

    y = data["target"].to_numpy(np.float64)
    if target_type == "volatility":
        return [_har_rv(data[list(HAR_INPUTS)].to_numpy(np.float64), y, train, val, test),
                _ewma(data[EWMA_INPUT].to_numpy(np.float64), y, train, val, test)]
    zeros = BaselineFit("zero", np.zeros(len(val)), np.zeros(len(test)), {})
    return [zeros, _ridge(data[list(feature_cols)].to_numpy(np.float64), y, train, val, test)]


def _har_rv(x: np.ndarray, y: np.ndarray, train: range, val: range, test: range) -> BaselineFit:
    """HAR-RV in logs: y = b0 + b_d rv_1 + b_w rv_5 + b_m rv_22, OLS on the training rows."""
    # has_constant="add": a constant column in the training rows must not eat the intercept.
    b = np.asarray(sm.OLS(y[train], sm.add_constant(x[train], has_constant="add")).fit().params)
    info = dict(zip(("b0", "b_d", "b_w", "b_m"), map(float, b), strict=True))
    return BaselineFit("har_rv", b[0] + x[val] @ b[1:], b[0] + x[test] @ b[1:], info)


def _ewma(ewma: np.ndarray, y: np.ndarray, train: range, val: range, test: range) -> BaselineFit:
    """RiskMetrics EWMA vol shifted by one level, the mean training-row error.

    ``base.ewma`` is half the log of a variance *forecast* (an estimate of E[r^2]), but the label
    is the log of a realised h-day vol, and E[log RV] < log E[RV] (Jensen): the raw forecast is
    biased upward by an amount set by how widely realised variance scatters around its forecast
    (large for short horizons), not by the forecast's skill. Fitting that
    one level on the training rows removes the bias while keeping RiskMetrics' slope of 1 (a
    fitted slope would make it a one-term HAR).
    """
    level = float(np.mean(y[train] - ewma[train]))
    return BaselineFit("ewma", ewma[val] + level, ewma[test] + level, {"level": level})


def _ridge(x: np.ndarray, y: np.ndarray, train: range, val: range, test: range) -> BaselineFit:
    """StandardScaler + Ridge fitted on the training rows, alpha = lowest validation MSE.

    The kept model is the training-row fit: validation rows choose alpha and are never fitted,
    so the baseline sees exactly the rows the neural models train on.
    """
    def fit(alpha: float) -> Pipeline:
        return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x[train], y[train])

    val_mse = [float(np.mean((fit(a).predict(x[val]) - y[val]) ** 2)) for a in RIDGE_ALPHAS]
    alpha = float(RIDGE_ALPHAS[int(np.argmin(val_mse))])
    model = fit(alpha)
    test_pred = model.predict(x[test]) if len(test) else np.zeros(0)  # sklearn refuses 0 rows
    return BaselineFit("ridge", model.predict(x[val]), test_pred, {"alpha": alpha})
