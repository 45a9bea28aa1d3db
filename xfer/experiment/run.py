"""``xfer transfer``: one experiment, every strategy x fraction against scratch, in one call.

On the target, for every fold and fraction, one population trains every strategy x seed x
learning-rate candidate, scratch included with the same number of candidates. Each
(strategy, seed) keeps the candidate with the best validation loss of that fold (fold k's own
validation window, which touches no test row); the test block is read once, for that model
only, and kept day by day. The practitioner baselines (HAR-RV and EWMA, or zero and ridge) are
fitted on the same rows. The tables (verdicts, sizing) come from the one aggregation,
:mod:`xfer.evaluate.tables`, exactly as a study's do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xfer.data.splits import Fold
from xfer.data.store import Store
from xfer.evaluate import tables as T
from xfer.evaluate.contract import PREDICTION_COLUMNS
from xfer.evaluate.inference import DayTest
from xfer.evaluate.metrics import icir
from xfer.train.types import MemberResult

from .config import Candidate, TransferConfig
from .evaluate import baseline_days, evaluate_fits
from .fit import fit_candidates, select
from .prepare import Context, Progress, prepare

CELL = ["strategy", "fraction"]

OnChosen = Callable[[Context, Fold, float, list[MemberResult]], None]
"""Called with each fold's chosen fits (after their test block is scored): the calibration's
oracle scores the same fitted models on a fresh sample of the target's generator."""


@dataclass
class TransferResult:
    config: TransferConfig
    metric: str
    table: pd.DataFrame
    """One row per (strategy, fraction): scores, paired CI and verdict."""
    fits: pd.DataFrame
    """One row per final fit (strategy, fraction, seed, fold) with every metric."""
    days: pd.DataFrame
    """Test days of every final fit and baseline (the predictions contract)."""
    sizing: pd.DataFrame
    """Required fraction per strategy (when several fractions were run)."""
    stages: list[dict[str, Any]] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    masked: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        """The JSON contract of ``xfer transfer --json``: one object per (strategy, fraction)."""
        return [{k: jsonable(v) for k, v in r.items()} for r in self.table.to_dict("records")]


def jsonable(v: Any) -> Any:
    """A value JSON can hold: NaN and inf become null, numpy scalars plain numbers."""
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def candidates(cfg: TransferConfig) -> list[Candidate]:
    """The same budget for every strategy: ``lr_candidates`` multipliers of its base LR."""
    return [Candidate(s, (cfg.source_lr if s == "scratch" else cfg.source_lr * cfg.lr_ratio) * m,
                      cfg.weight_decay, cfg.knobs, cfg.dann_weight)
            for s in dict.fromkeys(("scratch", *cfg.strategies)) for m in cfg.lr_candidates]


def _keys(cfg: TransferConfig) -> dict[str, Any]:
    return {"pair": f"{','.join(cfg.source)}->{cfg.target}", "source": ",".join(cfg.source),
            "target": cfg.target, "chain": ">".join(cfg.chain) if cfg.chain else "direct",
            "dann_weight": cfg.dann_weight}


def _keyed(rows: list[dict[str, Any]], cfg: TransferConfig, metric: str) -> pd.DataFrame:
    """Per-fit rows with the key columns of the results contract."""
    fits = pd.DataFrame(rows)
    return fits.assign(**_keys(cfg), metric=metric, val_score=fits["val_loss"], test_score=fits[f"test_{metric}"])


def day_frame(days: list[dict[str, Any]], keys: dict[str, Any]) -> pd.DataFrame:
    """Test days (one dict of arrays per fit) as the predictions contract's rows."""
    frame = pd.concat([pd.DataFrame(d) for d in days], ignore_index=True) if days else pd.DataFrame()
    base = frame["strategy"].isin(T.ALL_BASELINES)
    frame = frame.assign(**keys)
    frame.loc[base, "chain"], frame.loc[base, "dann_weight"] = "direct", 0.0
    return frame[list(PREDICTION_COLUMNS)]


def _table(fits: pd.DataFrame, days: pd.DataFrame, cfg: TransferConfig, metric: str) -> pd.DataFrame:
    v = T.verdicts(fits, days).drop(columns=["pair", "source", "target", "chain", "dann_weight"])
    extra = T.cell_means(fits, CELL)
    if cfg.target_type == "return":  # ICIR of the descriptive within-block IC, over folds
        per_fold = fits.groupby([*CELL, "fold"])["test_ic"].mean().groupby(level=CELL)
        extra = extra.merge(per_fold.apply(lambda s: icir(list(s))).rename("icir").reset_index(), on=CELL)
    order = {s: i for i, s in enumerate(dict.fromkeys(("scratch", *cfg.strategies)))}
    out = v.merge(extra, on=CELL, how="left")
    return out.sort_values(["fraction", "strategy"], key=lambda s: s.map(order) if s.name == "strategy" else s
                           ).reset_index(drop=True)


def fit_and_evaluate(ctx: Context, cfg: TransferConfig, *, baselines: bool = True,
                     on_chosen: OnChosen | None = None, progress: Progress | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The experiment's loop: per fraction, one population of every strategy x seed x candidate per
    fold; each (strategy, seed) keeps its best-validation candidate, whose test block is scored
    once; the practitioner baselines (``baselines``) on the same rows. Returns the per-fit rows
    and the test days (one dict of arrays per fit or baseline)."""
    say = progress or (lambda _m: None)
    rows: list[dict[str, Any]] = []
    days: list[dict[str, Any]] = []
    for frac in cfg.fractions:
        by_fold = fit_candidates(ctx, frac, candidates(cfg))
        for fold in ctx.folds:
            chosen = select(by_fold[fold.index])
            fit_rows, fit_days = evaluate_fits(ctx, fold, frac, chosen)
            rows.extend(fit_rows)
            days.extend(fit_days + (baseline_days(ctx, fold, frac) if baselines else []))
            if on_chosen is not None:
                on_chosen(ctx, fold, frac, chosen)
            say(f"fold {fold.index} fraction {frac:g}: {len(by_fold[fold.index])} fits in one population "
                f"({', '.join(_val_summary(chosen))} val)")
    return rows, days


def run_transfer(cfg: TransferConfig, store: Store | None = None, cache_dir: Path | None = None,
                 progress: Progress | None = None, on_chosen: OnChosen | None = None) -> TransferResult:
    """Run one transfer experiment; see the module docstring for the flow. ``on_chosen`` sees
    each fold's chosen fits (:data:`OnChosen`)."""
    t0 = time.perf_counter()
    ctx = prepare(cfg, store, cache_dir, progress)
    t3 = time.perf_counter()
    rows, days = fit_and_evaluate(ctx, cfg, on_chosen=on_chosen, progress=progress)
    timings = {**ctx.timings, "target_s": time.perf_counter() - t3}
    fits = _keyed(rows, cfg, ctx.metric)
    day_rows = day_frame(days, _keys(cfg))
    table = _table(fits, day_rows, cfg, ctx.metric)
    sizing = T.sizing(day_rows, ctx.metric) if len(cfg.fractions) > 1 else pd.DataFrame()
    timings["total_s"] = time.perf_counter() - t0
    stages = [{"market": ",".join(ctx.sources), "role": "source", **ctx.source_info}, *ctx.stages]
    return TransferResult(cfg, ctx.metric, table, fits, day_rows, sizing, stages, ctx.cols, ctx.masked, timings)


def _val_summary(chosen: list[MemberResult]) -> list[str]:
    by: dict[str, list[float]] = {}
    for c in chosen:
        by.setdefault(c.member.tag["strategy"], []).append(c.best_val)
    return [f"{k}={np.mean(v):.3f}" for k, v in by.items()]


def compare(a: TransferResult, b: TransferResult, strategy: str, fraction: float | None = None) -> DayTest:
    """Paired day-level test of ``b - a`` for one strategy (e.g. chain vs direct, DANN vs none)."""
    return T.compare_days(a.days, b.days, strategy, fraction)


__all__ = ["OnChosen", "TransferConfig", "TransferResult", "compare", "fit_and_evaluate", "run_transfer"]
