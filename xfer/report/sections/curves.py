"""Section 4, data-sizing curves: the test metric against target fraction, per strategy, with
scratch's full-data score as the line each curve has to reach."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from xfer.evaluate.contract import BASELINES
from xfer.report.figures import colour, embed, new_figure
from xfer.report.fmt import fmt_dann, fmt_fraction, sort_cells, strategy_rank
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BASELINE_STRATEGIES = frozenset(b for names in BASELINES.values() for b in names)
"""The practitioner baselines' names in curves.parquet: reference lines, not transfer strategies."""
BASELINE_COLOURS = {"har_rv": "#8c564b", "ewma": "#bcbd22", "zero": "#7f7f7f",
                    "ridge": "#17becf"}
INTRO = ("Mean day score with its 90% band (day-level interval, as the verdicts) per strategy; "
         "the black dashed line is scratch trained on all the target data, and where "
         "a curve crosses it is that strategy's required fraction (next section). "
         "Thin dashed lines are the practitioner baselines fitted on the same target "
         "rows as scratch: reference levels, not transfer strategies.")


def scratch_reference(curves: pd.DataFrame, pair: object, chain: object,
                      dann: object) -> pd.DataFrame:
    """Scratch's curve for a figure: scratch is trained once per pair, usually filed under
    the direct chain with DANN off, so fall back to that when the exact key has none."""
    s = curves[(curves["strategy"] == "scratch") & (curves["pair"] == pair)]
    for mask in ((s["chain"] == chain) & (s["dann_weight"] == dann),
                 (s["chain"] == "direct") & (s["dann_weight"] == 0.0)):
        if mask.any():
            return s[mask].sort_values("fraction")
    return s.sort_values("fraction")


def curve_figure(g: pd.DataFrame, scratch: pd.DataFrame, label: str, metric: str,
                 baselines: pd.DataFrame | None = None) -> Figure:
    """Strategies' curves with bands, scratch dotted, scratch at full data as the black dashed
    target line, and each baseline (one per target, whatever the chain) as a thin dashed line."""
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    baselines = baselines if baselines is not None else g.iloc[:0]
    for name, gg in sorted(baselines.groupby("strategy"), key=lambda t: str(t[0])):
        gg = gg.groupby("fraction")["mean"].mean().sort_index()
        ax.plot(gg.index.to_numpy(dtype=float), gg.to_numpy(dtype=float), "--", marker="x",
                linewidth=1, markersize=4, color=BASELINE_COLOURS.get(str(name), "#999999"),
                label=f"{name} (baseline)")
    lines = [(s, gg) for s, gg in g.groupby("strategy") if s != "scratch"]
    if not scratch.empty:
        lines.insert(0, ("scratch", scratch))
    for strategy, gg in sorted(lines, key=lambda t: strategy_rank(t[0])):
        gg = gg.groupby("fraction")[["mean", "ci_low", "ci_high"]].mean().sort_index()
        x = gg.index.to_numpy(dtype=float)
        c = colour(str(strategy))
        style = ":" if strategy == "scratch" else "-"
        ax.plot(x, gg["mean"], style, marker="o", color=c, label=str(strategy))
        ax.fill_between(x, gg["ci_low"].to_numpy(dtype=float), gg["ci_high"].to_numpy(dtype=float),
                        color=c, alpha=0.15, linewidth=0)
    if not scratch.empty:
        full = scratch[scratch["fraction"] == scratch["fraction"].max()]["mean"].mean()
        ax.axhline(full, linestyle="--", color="black", linewidth=1,
                   label=f"scratch @ {fmt_fraction(scratch['fraction'].max())}")
    fracs = sorted(set(pd.concat([g["fraction"], scratch["fraction"],
                                  baselines["fraction"]]).astype(float)))
    if fracs and fracs[0] > 0 and fracs[-1] / fracs[0] > 10:
        ax.set_xscale("log")  # 1%..100% on a linear axis would crush the small fractions
    ax.set_xticks(fracs, [fmt_fraction(f) for f in fracs])
    ax.minorticks_off()
    ax.set_xlabel("target fraction")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(label, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def figures(curves: pd.DataFrame, metric: str) -> tuple[list[dict[str, Any]], str | None]:
    """One figure per pair, chain and DANN weight; a note when there is nothing to draw."""
    is_baseline = curves["strategy"].astype(str).isin(BASELINE_STRATEGIES)
    models, baselines = curves[~is_baseline], curves[is_baseline]
    transfer = models[models["strategy"] != "scratch"]
    keys = transfer if not transfer.empty else models
    empty = "curves.parquet holds only baseline curves: no figure." if keys.empty else None
    out = []
    groups = sort_cells(keys, ["pair", "chain", "dann_weight"]).groupby(
        ["pair", "chain", "dann_weight"], sort=False)
    for (pair, chain, dann), g in groups:
        label = f"{pair} | {chain}" + ("" if float(dann) == 0.0 else f" | DANN {fmt_dann(dann)}")
        ref = scratch_reference(models, pair, chain, dann)
        base = baselines[baselines["pair"] == pair]
        out.append({"label": label, "image": embed(curve_figure(g, ref, label, metric, base),
                                                   f"sizing curve {label}")})
    return out, empty


def section(study: Study) -> Markup:
    curves = study.table("curves")
    groups, empty = figures(curves, study.metric) if curves is not None else ([], None)
    return render("sections/curves.html.j2", title=TITLES["curves"],
                  missing=study.notes["curves"] if curves is None else None,
                  intro=INTRO, empty=empty, groups=groups)
