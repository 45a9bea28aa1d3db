"""Section 3: where negative transfer sits, per pair and chain, as a heatmap and a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from xfer.report.figures import embed, new_figure
from xfer.report.fmt import (
    below_baseline,
    fmt_dann,
    fmt_delta,
    fmt_fraction,
    sort_cells,
    td,
    verdict_class,
)
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INTRO = ("Rows: strategies; columns: target fraction; colour: delta vs scratch "
         "(green better, red worse); text: the verdict (Holm-adjusted, as in the "
         "headline); 'below baseline' (†in the heatmap): positive vs scratch but not "
         "above the best practitioner baseline.")


def row_label(strategy: object, dann: object, many_dann: bool) -> str:
    return f"{strategy} (DANN {fmt_dann(dann)})" if many_dann else str(strategy)


def group(pair: object, chain: object, g: pd.DataFrame, metric: str) -> dict[str, Any]:
    """One pair and chain: its heading, heatmap and verdict table."""
    many_dann = g["dann_weight"].nunique() > 1
    g = sort_cells(g.assign(row=[row_label(s, d, many_dann)
                                 for s, d in zip(g["strategy"], g["dann_weight"], strict=True)]),
                   ["strategy", "dann_weight", "fraction"])
    rows = list(dict.fromkeys(g["row"]))
    cols = sorted(g["fraction"].unique())
    delta = g.pivot_table(index="row", columns="fraction", values="delta", aggfunc="mean")
    delta = delta.reindex(index=rows, columns=cols)
    word = g.groupby(["row", "fraction"])["verdict"].first()
    below = (g.assign(_below=[below_baseline(r) for r in g.to_dict("records")])
             .groupby(["row", "fraction"])["_below"].any())
    label = f"{pair} | {chain}"
    marked = word.where(~below.reindex(word.index, fill_value=False), word + "†")
    image = embed(heatmap(delta, marked, label, metric), f"verdict heatmap {label}")
    body = []
    for r in rows:
        cells = [td(r)]
        for c in cols:
            w = word.get((r, c))
            if w is None:
                cells.append(td("—"))
            elif below.get((r, c), False):
                cells.append(td(f"{w} {fmt_delta(delta.loc[r, c])}",
                                f"{verdict_class(w)} below-baseline", badge=True))
            else:
                cells.append(td(f"{w} {fmt_delta(delta.loc[r, c])}", verdict_class(w)))
        body.append(cells)
    return {"label": label, "image": image,
            "headers": ["strategy", *(fmt_fraction(c) for c in cols)], "rows": body}


def heatmap(delta: pd.DataFrame, word: pd.Series, label: str, metric: str) -> Figure:
    """Delta as colour (symmetric around 0 so white means no effect), verdict as text."""
    import matplotlib

    values = delta.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = new_figure(2.2 + 1.2 * values.shape[1], 1.2 + 0.6 * values.shape[0])
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for i, r in enumerate(delta.index):
        for j, c in enumerate(delta.columns):
            w = word.get((r, c))
            if w is not None:
                ax.text(j, i, f"{w}\n{fmt_delta(values[i, j])}", ha="center", va="center",
                        fontsize=8)
    ax.set_xticks(range(len(delta.columns)), [fmt_fraction(c) for c in delta.columns])
    ax.set_yticks(range(len(delta.index)), [str(r) for r in delta.index])
    ax.set_xlabel("target fraction")
    ax.set_title(label, fontsize=10)
    fig.colorbar(im, ax=ax, label=f"delta {metric}")
    return fig


def section(study: Study) -> Markup:
    v = study.table("verdicts")
    missing = study.notes["verdicts"] if v is None else None
    if v is not None:
        v = v[v["verdict"].astype(str) != "baseline"]
        missing = "verdicts.parquet holds only scratch baselines." if v.empty else None
    groups = [] if v is None or missing else [
        group(pair, chain, g, study.metric)
        for (pair, chain), g in sort_cells(v, ["pair", "chain"]).groupby(["pair", "chain"], sort=False)]
    return render("sections/matrix.html.j2", title=TITLES["matrix"], missing=missing, intro=INTRO,
                  groups=groups)
