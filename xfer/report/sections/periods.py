"""Section 7: does the result hold in every test period and volatility regime, or does one
fold or one regime carry the pooled number?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from xfer.report.figures import embed, grouped_bars, legend_above, new_figure
from xfer.report.fmt import fmt_score, pivot_table, sort_cells, strategies
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def intro(metric: str) -> str:
    return (f"Mean test {metric} per strategy, pooled over chains, fractions, "
            "DANN weights and seeds; per walk-forward test fold and per volatility "
            "regime of the target (split at its training-window median).")


def regime_columns(study: Study) -> dict[str, str]:
    metric = study.metric
    labels = {"high_vol": "high volatility", "low_vol": "low volatility"}
    return {f"regime_{k}_{metric}": v for k, v in labels.items()
            if f"regime_{k}_{metric}" in study.results.columns}


def dates(col: pd.Series) -> pd.Series:
    """Test-period bounds as plain dates, whether stored as text or as timestamps."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.dt.strftime("%Y-%m-%d")
    return col.astype(str)


def periods_figure(folds: pd.DataFrame, regimes: pd.DataFrame | None, pair: str,
                   metric: str) -> Figure:
    fig = new_figure(9.0 if regimes is not None else 5.5, 3.4)
    axes = fig.subplots(1, 2 if regimes is not None else 1, squeeze=False)[0]
    grouped_bars(axes[0], folds, f"test {metric}", f"{pair}: per test fold")
    if regimes is not None:
        grouped_bars(axes[1], regimes, f"test {metric}", f"{pair}: per regime")
    legend_above(fig, axes[0])
    return fig


def pair_block(pair: object, g: pd.DataFrame, regimes: dict[str, str], metric: str) -> dict[str, Any]:
    """One pair: its per-fold table, per-regime table (if the study has regimes) and figure."""
    order = strategies(g["strategy"])
    period = (g["fold"].astype(str) + ": " + dates(g["test_start"]) + ".."
              + dates(g["test_end"]))
    folds = (g.assign(period=period)
             .pivot_table(index=["fold", "period"], columns="strategy", values="test_score",
                          aggfunc="mean")
             .reindex(columns=order).droplevel("fold"))
    tables = [pivot_table(folds, "fold: test period", fmt_score)]
    by_regime = None
    if regimes:
        by_regime = (g.groupby("strategy")[list(regimes)].mean().T
                     .rename(index=regimes).reindex(columns=order))
        tables.append(pivot_table(by_regime, "regime", fmt_score))
    image = embed(periods_figure(folds, by_regime, str(pair), metric), f"periods and regimes {pair}")
    return {"pair": pair, "tables": tables, "image": image}


def section(study: Study) -> Markup:
    regimes = regime_columns(study)
    no_regimes = None if regimes else (
        f"No regime_<high_vol|low_vol>_{study.metric} columns in results.parquet: regime table omitted.")
    pairs = [pair_block(pair, g, regimes, study.metric)
             for pair, g in sort_cells(study.results, ["pair"]).groupby("pair", sort=False)]
    return render("sections/periods.html.j2", title=TITLES["periods"], intro=intro(study.metric),
                  no_regimes=no_regimes, pairs=pairs)
