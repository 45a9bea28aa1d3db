"""The calibration's oracle: a fitted model's day scores on a fresh sample of the target's generator.

Shared by the calibration suites (:mod:`xfer.experiment.calibration`,
:mod:`xfer.experiment.sizing_suite`), so neither imports the other for it.
"""

from __future__ import annotations

import numpy as np
import torch

from xfer.data import synthetic as syn
from xfer.data.features import FeatureMatrix, build_features
from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold
from xfer.evaluate.scores import day_scores
from xfer.train.population import predict_many
from xfer.train.types import Data, MemberResult

from .evaluate import fold_scale_of
from .prepare import Context


def fresh_sample(spec: syn.SynthSpec, n_days: int, seed: int, target_type: str, horizon: int) -> FeatureMatrix:
    """Features and labels of a fresh sample of ``spec`` (the oracle's target distribution)."""
    # pandas' nanosecond dates end in 2262: a long sample starts near their first year
    frame = syn.simulate(spec, n_days=n_days, seed=seed, start="1678-01-03").drop(columns=["regime"])
    return build_features(frame, target_type, horizon)


def fresh_day_scores(ctx: Context, fold: Fold, fraction: float, chosen: list[MemberResult],
                     fresh: FeatureMatrix) -> np.ndarray:
    """Day scores ``(n_fits, n_fresh_days)`` of the chosen fits on ``fresh``, with the test recipe.

    Exactly what :func:`~xfer.experiment.evaluate.evaluate_fits` does on the test block: the
    features standardised by this fold's (fraction's) training-window standardiser, the forecast
    taken back to the label's scale with the fold's label standardiser, (return target) divided
    by the RMS of the same model's validation forecasts, and scored against the fold's day-score
    scale.
    """
    data, sy, ff = ctx.fold_data(fold, fraction)
    x = ctx.tgt.data[ctx.cols].to_numpy(np.float64)
    sx = Standardizer.fit(x[ff.train.start:ff.train.stop])
    fx = torch.from_numpy(sx.transform(fresh.data[ctx.cols].to_numpy(np.float64)))
    fy = fresh.data["target"].to_numpy(np.float64)
    fdata = Data(fx, torch.zeros(len(fy), dtype=fx.dtype)).to(data.x.device)
    rows = torch.arange(ctx.backbone.window - 1, len(fy))  # full windows only
    params = [r.params for r in chosen]
    preds = predict_many(ctx.backbone, params, fdata, rows).cpu().numpy()
    vpreds = predict_many(ctx.backbone, params, data, torch.arange(ff.val.start, ff.val.stop)).cpu().numpy()
    scale = fold_scale_of(ctx, fold)
    y = fy[ctx.backbone.window - 1:]
    return np.stack([day_scores(ctx.cfg.target_type, y, sy.inverse(p), scale, sy.inverse(pv))
                     for p, pv in zip(preds, vpreds, strict=True)])
