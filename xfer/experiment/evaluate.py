"""Read the test block once for each chosen fit: metrics, regimes, importance, domain probe."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xfer.data.normalize import Standardizer
from xfer.data.splits import Fold
from xfer.evaluate.domain import embed, probe_accuracy
from xfer.evaluate.importance import permutation_importance, regime_masks
from xfer.evaluate.metrics import HIGHER_IS_BETTER, compute_metrics
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
                yt: np.ndarray) -> dict[str, float]:
    cfg, metric = ctx.cfg, ctx.metric

    def predict(x: torch.Tensor) -> np.ndarray:
        return sy.inverse(predict_many(ctx.backbone, [params], Data(x, data.y), rows)[0].cpu().numpy())

    def score(p: np.ndarray) -> float:
        v = compute_metrics(cfg.target_type, yt, p, cfg.cost_bps, cfg.h)[metric]
        return v if HIGHER_IS_BETTER[metric] else -v

    return permutation_importance(predict, data.x, rows, score, _families(ctx.cols), repeats=cfg.importance_repeats)


def evaluate_fits(ctx: Context, fold: Fold, fraction: float, chosen: list[MemberResult]) -> list[dict[str, Any]]:
    """One row per chosen fit with every test metric; the test block is read here only."""
    cfg, metric = ctx.cfg, ctx.metric
    data, sy, ff = ctx.fold_data(fold, fraction)
    dates = ctx.tgt.data["date"]
    test_rows = torch.arange(ff.test.start, ff.test.stop)
    preds = predict_many(ctx.backbone, [r.params for r in chosen], data, test_rows).cpu().numpy()
    yt = ctx.tgt.data["target"].to_numpy(np.float64)[ff.test.start:ff.test.stop]
    regimes = _regimes(ctx, ff)
    rows = []
    for r, p in zip(chosen, preds, strict=True):
        praw = sy.inverse(p)
        row: dict[str, Any] = {
            "strategy": r.member.tag["strategy"], "fraction": fraction, "seed": r.member.tag["seed"],
            "fold": fold.index, "lr": r.member.lr, "weight_decay": r.member.weight_decay,
            "val_loss": r.best_val, "epochs": r.epochs, "best_epoch": r.best_epoch,
            "n_train": len(ff.train), "n_test": len(ff.test), "domain_acc": r.aux_metric,
            "test_start": str(dates.iloc[ff.test.start].date()), "test_end": str(dates.iloc[ff.test.stop - 1].date()),
        }
        row.update({f"test_{k}": v for k, v in compute_metrics(cfg.target_type, yt, praw, cfg.cost_bps, cfg.h).items()})
        for reg, mask in regimes.items():
            row[f"regime_{reg}_{metric}"] = (compute_metrics(cfg.target_type, yt[mask], praw[mask], cfg.cost_bps,
                                                             cfg.h)[metric] if mask.sum() >= 10 else float("nan"))
        if cfg.domain_probe or r.member.aux_weight > 0:
            row["domain_probe_acc"] = _probe(ctx, r.params, data, ff)
        if cfg.importance_repeats:
            imp = _importance(ctx, r.params, data, test_rows, sy, yt)
            row.update({f"importance_{k}": v for k, v in imp.items()})
        rows.append(row)
    return rows
