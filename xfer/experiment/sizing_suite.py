"""The sizing suite of the calibration: does the required-fraction interval cover the truth?

Every replication fits scratch and the strategies at every fraction of a grid on a new target
of the "shared" pair (return target), builds the sizing table exactly as a study does
(:func:`xfer.evaluate.tables.sizing`), and measures the truth on a fresh sample of the target's
generator: for each strategy the oracle curve ``g(f)`` = fresh-sample mean score of the fitted
models at fraction ``f`` minus that of scratch at the largest fraction (seeds averaged, folds
weighted by their test blocks, each fold's own standardisers and scales, as for the verdicts'
oracle), and the oracle required fraction ``f* = min{f : g(f) >= 0}`` (inf: never). Coverage
is the share of replications whose interval contains ``f*``: the monotone estimator's 90% band
(``monotone_ci_low`` / ``monotone_ci_high``) and, beside it, the first-passage statistic's
90% bootstrap interval it replaces. Scratch has a row too (its smaller fractions against its own
full-data score): on this pair transfer at 5% often already beats full-data scratch, so the
strategies' truth sits at the grid's first point, while scratch's sits inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xfer.evaluate import tables as T

from .prepare import Context, prepare
from .run import _keys, day_frame, fit_and_evaluate
from .summaries import rate

SIZING_FRACTIONS = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0)
"""The grid of the sizing suite (the study default's shape: dense at small fractions)."""


@dataclass
class CurveOracle:
    """Fresh-sample mean score per (strategy, fraction, seed), folds pooled by test-block weight."""

    fresh: Any
    acc: dict[tuple[str, float, int], float] = field(default_factory=dict)

    def add(self, ctx: Context, fold: Any, fraction: float, chosen: list[Any]) -> None:
        from .oracle import fresh_day_scores

        scores = fresh_day_scores(ctx, fold, fraction, chosen, self.fresh)
        weight = len(fold.test) / sum(len(f.test) for f in ctx.folds)
        for i, r in enumerate(chosen):
            key = (r.member.tag["strategy"], fraction, r.member.tag["seed"])
            self.acc[key] = self.acc.get(key, 0.0) + weight * float(scores[i].mean())

    def curve(self, strategy: str) -> dict[float, float]:
        """``g(f)``: the strategy's seed-mean oracle score minus scratch's at the largest fraction."""
        def mean(st: str, f: float) -> float:
            return float(np.mean([v for (s, fr, _), v in self.acc.items() if s == st and fr == f]))

        top = max(fr for (s, fr, _) in self.acc if s == "scratch")
        ref = mean("scratch", top)
        fracs = sorted({fr for (s, fr, _) in self.acc if s == strategy})
        return {f: mean(strategy, f) - ref for f in fracs}


def first_reach(curve: dict[float, float]) -> float:
    return next((f for f in sorted(curve) if curve[f] >= 0.0), math.inf)


def _inside(x: float, lo: float, hi: float) -> bool:
    return bool(lo <= x <= hi) if math.isfinite(x) else bool(math.isinf(hi))


def replicate_sizing(cfg: Any, store: Any, cache_dir: Any, fresh: Any) -> pd.DataFrame:
    """One sizing replication: the study's sizing table joined with the oracle's ``f*``."""
    ctx = prepare(cfg, store, cache_dir)
    oracle = CurveOracle(fresh)
    _, days = fit_and_evaluate(ctx, cfg, baselines=False, on_chosen=oracle.add)
    table = T.sizing(day_frame(days, _keys(cfg)))
    table = table.copy()  # scratch too: its own curve against its full-data score (truth rarely at an edge)
    truth = {st: oracle.curve(st) for st in table["strategy"]}
    table["oracle_fraction"] = [first_reach(truth[st]) for st in table["strategy"]]
    table["oracle_monotone"] = [bool(np.all(np.diff([truth[st][f] for f in sorted(truth[st])]) >= 0))
                                for st in table["strategy"]]
    table["monotone_covered"] = [_inside(o, lo, hi) for o, lo, hi in
                                 zip(table["oracle_fraction"], table["monotone_ci_low"],
                                     table["monotone_ci_high"], strict=True)]
    table["first_passage_covered"] = [_inside(o, lo, hi) for o, lo, hi in
                                      zip(table["oracle_fraction"], table["ci_low"], table["ci_high"], strict=True)]
    return table


def sizing_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Per strategy and pooled: coverage of both intervals, how often each point hits ``f*``."""
    def one(g: pd.DataFrame) -> dict[str, Any]:
        o = g["oracle_fraction"]
        return {"monotone": rate(g["monotone_covered"]), "first_passage": rate(g["first_passage_covered"]),
                "monotone_hit": rate(g["monotone_fraction"] == o), "first_passage_hit": rate(g["required_fraction"] == o),
                "oracle_never": rate(np.isinf(o)), "oracle_monotone": rate(g["oracle_monotone"]),
                "oracle_median": float(np.median(o)) if len(o) else math.nan,
                "monotone_width": float((np.log(g["monotone_ci_high"].clip(upper=2.0))
                                         - np.log(g["monotone_ci_low"].clip(upper=2.0))).mean())}

    return {"pooled": one(rows), **{str(st): one(g) for st, g in rows.groupby("strategy")},
            "replications": int(rows["replication"].nunique()) if len(rows) else 0}
