"""The verdict metric of each target type: one score per test day, scales fixed before the test.

Verdicts, curves and required fractions rest on these day scores (see :mod:`xfer.evaluate.daily`
for why per-day and why the scales must be known ex ante):

- ``r2_oos`` (volatility): ``1 - (y - p)^2 / var_ref`` with ``var_ref`` the label's variance over
  the fold's full training window. Its mean over a test block is an out-of-sample R^2 against
  the training-window variance; a paired difference of two models is their squared-error
  difference divided by a constant shared by both, so its expectation is the MSE gain, in
  units of the label's variance.
- ``skill`` (return): ``f * y / y_scale`` with ``f`` the forecast divided by the RMS of the same
  model's forecasts on its validation rows, and ``y_scale`` the return's standard deviation
  over the fold's full training window. Nothing is demeaned over the test block, so for returns
  that are a martingale difference every forecast has expected skill exactly 0 (the within-block
  IC does not: a persistent predictor scores about +0.05 on i.i.d. returns). A forecast with
  unit RMS that is perfectly correlated with a unit-variance return scores 1, so it reads like
  an uncentred IC.

The scales depend on the fold only (not on the fraction or the model), so every model and
baseline of a fold is scored in the same units and their day scores can be differenced.
"""

from __future__ import annotations

import numpy as np

from xfer.evaluate.daily import return_day_scores, standardise_forecast, volatility_day_scores

VERDICT_METRIC = {"volatility": "r2_oos", "return": "skill"}
"""The verdict metric of each target type (higher is better)."""


def fold_scale(target_type: str, y_train: np.ndarray) -> float:
    """The fixed scale of a fold's day scores, from its full training window's labels."""
    y = np.asarray(y_train, dtype=np.float64)
    if target_type == "volatility":
        return float(np.var(y))
    if target_type == "return":
        return float(np.std(y))
    raise ValueError(f"The 'target_type' parameter must be one of {sorted(VERDICT_METRIC)}. "
                     f"Got {target_type!r} instead.")


def day_scores(target_type: str, y: np.ndarray, pred: np.ndarray, scale: float,
               pred_ref: np.ndarray | None = None) -> np.ndarray:
    """Per-day verdict scores of raw-scale forecasts ``pred`` of labels ``y``.

    ``scale`` comes from :func:`fold_scale`; ``pred_ref`` (returns only) is the same model's
    forecast on its validation rows, which fixes the forecast's own scale ex ante.
    """
    if target_type == "volatility":
        return volatility_day_scores(y, pred, scale)
    if target_type == "return":
        if pred_ref is None:
            raise ValueError("The 'pred_ref' parameter of day_scores must be the model's validation "
                             "forecasts for a return target. Got None instead.")
        return return_day_scores(y, standardise_forecast(pred, pred_ref), scale)
    raise ValueError(f"The 'target_type' parameter must be one of {sorted(VERDICT_METRIC)}. "
                     f"Got {target_type!r} instead.")


def skill_split(y: np.ndarray, pred: np.ndarray, scale: float, pred_ref: np.ndarray) -> dict[str, float]:
    """The mean return ``skill`` over a block split into ``bias`` and ``timing`` (they sum to it).

    ``mean(f * y) / s = mean(f) * mean(y) / s + cov(f, y) / s`` (population covariance over the
    block): ``bias`` is what the forecast's average position earns from the block's drift (a
    constant long forecast in a rising market scores only here), ``timing`` what its day-to-day
    variation around that average earns (zero for any constant forecast). ``f`` and ``s`` are
    those of :func:`day_scores`, so the split is in the verdict's units.
    """
    y_ = np.asarray(y, dtype=np.float64)
    f = standardise_forecast(np.asarray(pred, dtype=np.float64), pred_ref)
    total = float(np.mean(return_day_scores(y_, f, scale)))
    bias = float(np.mean(f) * np.mean(y_) / scale)
    return {"skill_bias": bias, "skill_timing": total - bias}
