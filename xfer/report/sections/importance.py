"""Section 8: which feature families each model leans on, transferred next to scratch."""

from __future__ import annotations

from typing import Any

import pandas as pd
from markupsafe import Markup

from xfer.report.figures import embed, grouped_bars, legend_above, new_figure
from xfer.report.fmt import fmt_fraction, fmt_score, pivot_table, sort_cells, strategies
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

UNIVERSAL = ("mean reversion", "volatility clustering", "momentum")
"""The feature families whose patterns the seed article expects to carry across markets."""


def intro(metric: str) -> str:
    return (
        f"Importance = the drop in test {metric} when one feature family is shuffled "
        "(permutation importance; higher = the model relies on it more). A transfer that "
        f"rests on the universal families ({', '.join(UNIVERSAL)}) more than scratch does is "
        "carrying over patterns that generalise; one that leans on the same target-specific "
        "families as scratch (e.g. market structure) may be memorising target idiosyncrasies "
        "rather than transferring.")


def family_label(column: str) -> str:
    return column.removeprefix("importance_").replace("_", " ")


def pair_block(pair: object, g: pd.DataFrame, cols: list[str], metric: str) -> dict[str, Any]:
    """One pair: importance per strategy and fraction as a table, per strategy as bars."""
    families = {c: family_label(c) for c in cols}
    per_cell = (sort_cells(g, ["strategy", "fraction"])
                .groupby(["strategy", "fraction"], sort=False)[cols].mean()
                .rename(columns=families))
    per_cell.index = [f"{s} @ {fmt_fraction(f)}" for s, f in per_cell.index]
    per_strategy = (g.groupby("strategy")[cols].mean().rename(columns=families)
                    .reindex(strategies(g["strategy"])).T)
    table = pivot_table(per_cell, "strategy @ fraction", fmt_score)
    fig = new_figure(6.4, 3.4)
    ax = fig.add_subplot()
    grouped_bars(ax, per_strategy, f"importance (drop in {metric})", f"{pair}: mean over fractions")
    legend_above(fig, ax)
    return {"pair": pair, "table": table, "image": embed(fig, f"feature importance {pair}")}


def section(study: Study) -> Markup:
    r = study.results
    cols = [c for c in r.columns if c.startswith("importance_")]
    pairs = [pair_block(pair, g, cols, study.metric)
             for pair, g in sort_cells(r, ["pair"]).groupby("pair", sort=False)] if cols else []
    return render("sections/importance.html.j2", title=TITLES["importance"],
                  missing=None if cols else
                  "No importance_<family> columns in results.parquet: section omitted.",
                  intro=intro(study.metric), pairs=pairs)
