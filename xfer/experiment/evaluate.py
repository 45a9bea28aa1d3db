"""Read the test block once for each chosen fit: day scores, metrics, regimes, importance,
domain probe; and fit the practitioner baselines on exactly the same rows.

Every fit leaves one row (the fold summary) and its test days (``y``, ``pred``, ``score``): the
verdicts resample those days (:mod:`xfer.evaluate.tables`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold
from xfer.evaluate.baselines import fit_baselines
from xfer.evaluate.domain import embed, probe_accuracy
from xfer.evaluate.importance import permutation_importance, regime_masks
from xfer.evaluate.metrics import compute_metrics
from xfer.evaluate.scores import day_scores, fold_scale, skill_split
from xfer.train.population import predict_many
from xfer.train.types import Data, MemberResult, Params

from .prepare import Context


def _families(cols: list[str]) -> dict[str, list[int]]:
    fam: dict[str, list[int]] = {}
    for i, c in enumerate(cols):
        fam.setdefault(c.split(".", 1)[0], []).append(i)
    return fam


def _regimes(ctx: Context, ff: Fold) -> dict[str, np.ndarray]:
    """High / low volatility test rows, split at the training window's median trailing vol."""
    if "volatility.rv_20" not in ctx.tgt.data:
        return {}
    rv = ctx.tgt.data["volatility.rv_20"].to_numpy()
    return regime_masks(rv[ff.test.start:ff.test.stop], float(np.median(rv[ff.train.start:ff.train.stop])))


def _probe(ctx: Context, params: Params, data: Data, ff: Fold) -> float:
    """The domains DANN aligns: source vs target training rows; scored on both domains'
    validation rows (later in time, never fitted on)."""
    def emb(d: Data, rows: torch.Tensor) -> torch.Tensor:
        return embed(ctx.backbone, params, d, rows[:: max(1, len(rows) // 2000)])

    return probe_accuracy(
        emb(ctx.src.data, ctx.src.train), emb(data, torch.arange(ff.train.start, ff.train.stop)),
        emb(ctx.src.data, ctx.src.val), emb(data, torch.arange(ff.val.start, ff.val.stop)))


def _importance(ctx: Context, params: Params, data: Data, rows: torch.Tensor, sy: Standardizer,
                yt: np.ndarray, scale: float, pred_ref: np.ndarray) -> dict[str, float]:
    """Drop in the mean day score when one feature family is shuffled (forecast scale kept)."""
    def predict(x: torch.Tensor) -> np.ndarray:
        return sy.inverse(predict_many(ctx.backbone, [params], Data(x, data.y), rows)[0].cpu().numpy())

    def score(p: np.ndarray) -> float:
        return float(day_scores(ctx.cfg.target_type, yt, p, scale, pred_ref).mean())

    return permutation_importance(predict, data.x, rows, score, _families(ctx.cols), repeats=ctx.cfg.importance_repeats)


def fold_scale_of(ctx: Context, fold: Fold) -> float:
    """The day-score scale of a fold: from its full training window, whatever the fraction."""
    y = ctx.tgt.data["target"].to_numpy(np.float64)
    return fold_scale(ctx.cfg.target_type, y[fold.train.start:fold.train.stop])


def _days(ctx: Context, fold: Fold, yt: np.ndarray, pred: np.ndarray, score: np.ndarray,
          strategy: str, seed: int, fraction: float) -> dict[str, Any]:
    """Columns of one fit's test days (the key columns are added by the caller)."""
    rows = np.arange(fold.test.start, fold.test.stop)
    return {"strategy": strategy, "fraction": fraction, "seed": seed, "fold": fold.index, "row": rows,
            "date": ctx.tgt.data["date"].to_numpy()[rows], "horizon": ctx.cfg.h, "y": yt, "pred": pred,
            "score": score}


def baseline_days(ctx: Context, fold: Fold, fraction: float) -> list[dict[str, Any]]:
    """The target's practitioner baselines fitted on this fold's fraction of training rows
    (the rows scratch trains on), as test days; selection reads validation rows only."""
    ff = fold.with_fraction(fraction)
    yt = ctx.tgt.data["target"].to_numpy(np.float64)[ff.test.start:ff.test.stop]
    scale = fold_scale_of(ctx, fold)
    out = []
    for b in fit_baselines(ctx.cfg.target_type, ctx.tgt.data, ctx.cols, ff.train, ff.val, ff.test):
        score = day_scores(ctx.cfg.target_type, yt, b.test_pred, scale, b.val_pred)
        out.append(_days(ctx, ff, yt, b.test_pred, score, b.name, 0, fraction))
    return out


def evaluate_fits(ctx: Context, fold: Fold, fraction: float, chosen: list[MemberResult]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per chosen fit: one summary row with every test metric, and its test days.

    The test block is read here only. ``test_score`` is the mean day score of the verdict
    metric; ``test_<m>`` are the descriptive metrics (the within-block IC among them).
    """
    cfg, metric = ctx.cfg, ctx.metric
    data, sy, ff = ctx.fold_data(fold, fraction)
    dates = ctx.tgt.data["date"]
    test_rows = torch.arange(ff.test.start, ff.test.stop)
    val_rows = torch.arange(ff.val.start, ff.val.stop)
    params = [r.params for r in chosen]
    preds = predict_many(ctx.backbone, params, data, test_rows).cpu().numpy()
    vpreds = predict_many(ctx.backbone, params, data, val_rows).cpu().numpy()
    yt = ctx.tgt.data["target"].to_numpy(np.float64)[ff.test.start:ff.test.stop]
    scale = fold_scale_of(ctx, fold)
    regimes = _regimes(ctx, ff)
    rows, days = [], []
    for r, p, pv in zip(chosen, preds, vpreds, strict=True):
        praw, pref = sy.inverse(p), sy.inverse(pv)
        score = day_scores(cfg.target_type, yt, praw, scale, pref)
        row: dict[str, Any] = {
            "strategy": r.member.tag["strategy"], "fraction": fraction, "seed": r.member.tag["seed"],
            "fold": fold.index, "lr": r.member.lr, "weight_decay": r.member.weight_decay,
            "val_loss": r.best_val, "epochs": r.epochs, "best_epoch": r.best_epoch, "best_step": r.best_step,
            "eval_every": r.eval_every, "n_train": len(ff.train), "n_test": len(ff.test),
            "domain_acc": r.aux_metric, f"test_{metric}": float(score.mean()),
            "test_start": str(dates.iloc[ff.test.start].date()), "test_end": str(dates.iloc[ff.test.stop - 1].date()),
        }
        row.update({f"test_{k}": v for k, v in compute_metrics(cfg.target_type, yt, praw, cfg.cost_bps, cfg.h).items()})
        if cfg.target_type == "return":
            row.update({f"test_{k}": v for k, v in skill_split(yt, praw, scale, pref).items()})
        for reg, mask in regimes.items():
            row[f"regime_{reg}_{metric}"] = float(score[mask].mean()) if mask.sum() >= 10 else float("nan")
        if cfg.domain_probe or r.member.aux_weight > 0:
            row["domain_probe_acc"] = _probe(ctx, r.params, data, ff)
        if cfg.importance_repeats:
            imp = _importance(ctx, r.params, data, test_rows, sy, yt, scale, pref)
            row.update({f"importance_{k}": v for k, v in imp.items()})
        rows.append(row)
        days.append(_days(ctx, ff, yt, praw, score, row["strategy"], row["seed"], fraction))
    return rows, days
