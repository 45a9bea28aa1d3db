"""The report's figures: matplotlib PNGs embedded in the page as base64, so it needs no
sibling files. matplotlib is imported only when a figure is drawn (``import xfer.report``
stays cheap)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Image:
    """A figure ready for the page (``macros.html.j2``: ``img``): alt text and base64 PNG."""

    alt: str
    data: str


FIGURES: ContextVar[list[tuple[str, bytes]] | None] = ContextVar("xfer_report_figures", default=None)
"""While :func:`xfer.report.html.render_report` runs with ``figures=``: every figure's
(alt text, PNG bytes), in page order."""


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, without pyplot, so no global backend is ever switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def embed(fig: Figure, alt: str) -> Image:
    """The figure as a base64 PNG for the page; also handed to the ``figures=`` sink, if any.

    Call it in page order: the sink's order is the order of the calls."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    sink = FIGURES.get()
    if sink is not None:
        sink.append((alt, buf.getvalue()))
    return Image(alt, base64.b64encode(buf.getvalue()).decode("ascii"))


def figure_names(alts: Sequence[str]) -> list[str]:
    """A file name per figure: its alt text as a slug (``curve wti r2_oos`` -> ``curve-wti-r2-oos.png``),
    numbered when two figures share one."""
    names: list[str] = []
    for alt in alts:
        slug = re.sub(r"[^a-z0-9]+", "-", alt.lower()).strip("-") or "figure"
        name, n = f"{slug}.png", 2
        while name in names:
            name, n = f"{slug}-{n}.png", n + 1
        names.append(name)
    return names


def colour(strategy: str) -> str:
    """One colour per strategy across every figure; scratch is always grey."""
    palette = {"scratch": "#555555", "head_only": "#1f77b4", "partial": "#ff7f0e",
               "full": "#2ca02c"}
    extra = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
    return palette.get(strategy, extra[sum(map(ord, strategy)) % len(extra)])


def grouped_bars(ax: Axes, table: pd.DataFrame, ylabel: str, title: str) -> None:
    """Bars grouped by the table's index, one bar per column (strategy)."""
    n_groups, n_bars = table.shape
    width = 0.8 / max(n_bars, 1)
    x = np.arange(n_groups)
    for i, col in enumerate(table.columns):
        ax.bar(x + (i - (n_bars - 1) / 2) * width, table[col].to_numpy(dtype=float), width,
               label=str(col), color=colour(str(col)))
    ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def legend_above(fig: Figure, ax: Axes) -> None:
    """One legend above the panels, where it cannot hide a bar."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=max(len(labels), 1), fontsize=8)
