"""The local HTML report of a study: one self-contained page a reviewer can open offline.

The report reads only the study directory's contract files (:mod:`xfer.evaluate.contract`), so it
works on any study, finished or interrupted, without re-running anything. It is one file on
purpose: plots are matplotlib PNGs embedded as base64, CSS is inline, there is no JavaScript
and nothing is fetched from the network, so the page can be mailed, archived or attached to
a review and still show exactly what the study found.

Sections follow the questions the seed article says a transfer claim must answer: is the
transfer better than scratch (a day-level interval, a Holm-adjusted verdict, and the smallest
effect the design could detect), is it better than the practitioner's simple baselines too,
how much target data each freezing strategy needs against the article's rules of thumb,
whether chains and DANN help, whether the result holds across periods and volatility
regimes, and whether it rests on universal feature families or memorised target
idiosyncrasies.

A directory written before day-level verdicts (``n_pairs``, no ``p_adjusted``) is refused
with :class:`xfer.evaluate.tables.StaleTableError` naming every stale file and its missing
columns, before anything is written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    BASELINES,
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    POOLED_COLUMNS,
    RESULTS_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    STRATEGY_ORDER,
    VERDICT_COLUMNS,
)
from xfer.io import atomic_write, write_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_NAME = "report.html"
OPTIONAL_RESULTS_COLUMNS = ("best_epoch",)
"""Contract columns of results.parquet the report shows only when present (best_step is the
early-stopping point it reads)."""
REQUIRED_RESULTS_COLUMNS = tuple(c for c in RESULTS_COLUMNS if c not in OPTIONAL_RESULTS_COLUMNS)
OPTIONAL_FILES: dict[str, tuple[str, ...]] = {
    "verdicts": VERDICT_COLUMNS,
    "curves": CURVE_COLUMNS,
    "sizing": SIZING_COLUMNS,
    "comparisons": COMPARISON_COLUMNS,
}
"""Optional contract files and their required columns; a missing one omits its sections."""

CELL_COLUMNS = ("pair", "chain", "strategy", "fraction", "dann_weight")
"""What identifies a cell on the page (source and target are implied by the pair)."""

_VERDICTS = ("positive", "negative", "inconclusive", "baseline")
BASELINE_STRATEGIES = frozenset(b for names in BASELINES.values() for b in names)
"""The practitioner baselines' names in curves.parquet: reference lines, not transfer strategies."""
METRIC_MEANING = {
    "r2_oos": "out-of-sample R² per test day, against the training window's label variance",
    "skill": "forecast skill per test day (standardised forecast × return / training-window "
             "return scale; 0 for any forecast of an unpredictable return)",
}
"""One phrase per verdict metric for the header (see xfer.evaluate.scores)."""
METRIC_TARGET = {"r2_oos": "volatility", "skill": "return", "r2": "volatility", "ic": "return"}
"""Target type implied by the verdict metric (r2/ic: studies written before r2_oos/skill)."""
_ADJUSTMENTS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "fdr_bh": "Benjamini-Hochberg"}
_UNIVERSAL = ("mean reversion", "volatility clustering", "momentum")

# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Study:
    """Everything the report reads from a study directory, loaded once and validated."""

    root: Path
    name: str
    spec: Mapping[str, Any]
    results: pd.DataFrame
    tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    """Optional contract tables by stem (``verdicts``...); None when missing or empty."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why an optional table is None, one line each, shown where its section would be."""

    @cached_property
    def metric(self) -> str:
        """The primary metric (the most common one if a study somehow mixes several)."""
        metrics = self.results["metric"].dropna().astype(str)
        return str(metrics.mode().iloc[0]) if len(metrics) else "score"

    def table(self, stem: str) -> pd.DataFrame | None:
        return self.tables.get(stem)


def _missing(frame: pd.DataFrame, required: Sequence[str]) -> list[str]:
    return [c for c in required if c not in frame.columns]


def _stale(root: Path, problems: Sequence[tuple[Path, list[str]]]) -> XferInputError:
    """The error for contract files that lack columns: every such file with its missing columns.

    It is :class:`xfer.evaluate.tables.StaleTableError` (an :class:`XferInputError`, so the CLI
    exits 2 with the message), the type the study's own readers raise for the same cause;
    imported here, not at module level, because ``xfer.evaluate.tables`` loads the statistics
    stack (arch, statsmodels) and ``import xfer.report`` should stay cheap.
    """
    from xfer.evaluate.tables import StaleTableError

    if len(problems) == 1:
        (file, cols), = problems
        found = f"missing column(s) {', '.join(cols)}"
    else:
        file = root
        found = "; ".join(f"{path.name} missing column(s) {', '.join(cols)}" for path, cols in problems)
    return StaleTableError(
        file=file, field="columns", expected="the columns of this xfer's contract (xfer.evaluate.contract)",
        found=found, hint="written by an older xfer (before day-level verdicts) or by another tool; "
        "re-run the study into a new directory")


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read one contract table; a corrupt file is reported by name, not as a pyarrow trace."""
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise XferInputError(file=path, expected="a readable Parquet file",
                             found=f"{type(exc).__name__}: {exc}") from exc


def _read_spec(root: Path) -> dict[str, Any]:
    """The resolved spec if present; the report still renders without it (title = folder)."""
    path = root / "spec.json"
    if not path.is_file():
        return {}
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def load_study(study_dir: Path) -> Study:
    """Load and validate the contract files of ``study_dir``.

    results.parquet is required because every section is about fits; the other tables are
    optional so that a study stopped half-way still gets a report of what it has.

    Raises:
        FileNotFoundError: no results.parquet.
        xfer.evaluate.tables.StaleTableError: a contract file lacks columns (a directory written
            before day-level verdicts, or by another tool); the message names every such file
            and its missing columns.
        XferInputError: an unreadable Parquet file, or results.parquet without rows.
    """
    root = Path(study_dir)
    results_path = root / "results.parquet"
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{results_path}: results.parquet not found; a report needs the study's fits "
            f"(is {root} a study directory, and has the study finished at least one cell?)")
    results = _read_parquet(results_path)
    stale = [(results_path, m)] if (m := _missing(results, REQUIRED_RESULTS_COLUMNS)) else []
    tables: dict[str, pd.DataFrame | None] = {}
    notes: dict[str, str] = {}
    for stem, columns in OPTIONAL_FILES.items():
        path = root / f"{stem}.parquet"
        if not path.is_file():
            tables[stem], notes[stem] = None, f"{stem}.parquet is missing: section omitted."
            continue
        frame = _read_parquet(path)
        if missing := _missing(frame, columns):
            stale.append((path, missing))
        if frame.empty:
            tables[stem], notes[stem] = None, f"{stem}.parquet is empty: section omitted."
        else:
            tables[stem] = frame
    if stale:  # every stale file at once: the cure (re-run) is the same for all
        raise _stale(root, stale)
    if results.empty:
        raise XferInputError(file=results_path, expected="at least one fit", found="0 rows")
    spec = _read_spec(root)
    name = spec.get("name") if isinstance(spec.get("name"), str) and spec.get("name") else None
    return Study(root, name or root.resolve().name, spec, results, tables, notes)


# --------------------------------------------------------------------------- formatting


def _e(value: object) -> str:
    """Escape anything that came from data before it touches the page."""
    return html.escape(str(value), quote=True)


def _finite(x: object) -> float | None:
    """The value as a float if it is a finite number (NaN, NA, None and text are not)."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        return None
    return float(x) if math.isfinite(float(x)) else None


def fmt_score(x: object) -> str:
    """A metric value: 4 decimals, a dash for missing."""
    v = _finite(x)
    return "—" if v is None else f"{v:.4f}"


def fmt_delta(x: object) -> str:
    """A difference: signed, 4 decimals, so its direction reads at a glance."""
    v = _finite(x)
    return "—" if v is None else f"{v:+.4f}"


def fmt_ci(low: object, high: object) -> str:
    return f"[{fmt_delta(low)}, {fmt_delta(high)}]"


def fmt_p(x: object) -> str:
    """A p-value: 3 decimals, ``<0.001`` below that, a dash for missing (scratch rows)."""
    v = _finite(x)
    if v is None:
        return "—"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_half_width(x: object) -> str:
    """The detectable effect (an interval half-width): ``±0.0123``."""
    v = _finite(x)
    return "—" if v is None else f"±{v:.4f}"


def fmt_count(x: object) -> str:
    v = _finite(x)
    return "—" if v is None else str(int(v))


def fmt_general(x: object) -> str:
    """Hyperparameters span decades (LR 1e-4..1e-2), so 3 significant digits."""
    v = _finite(x)
    return "—" if v is None else f"{v:.3g}"


def fmt_fraction(x: object) -> str:
    """A target fraction as a percentage, the unit of the article's rules of thumb;
    an infinite required fraction means the curve never reached scratch."""
    if isinstance(x, float | np.floating) and math.isinf(float(x)):
        return "not reached"
    v = _finite(x)
    return "—" if v is None else f"{v * 100:.3g}%"


def _dann(x: object) -> str:
    """DANN weight 0.0 is the contract's "DANN off"."""
    return "off" if _finite(x) == 0.0 else fmt_general(x)


def _td(value: object, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


def _td_html(inner: str, cls: str | None = None) -> str:
    """A cell whose content is already-escaped HTML (a verdict with its badge)."""
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{inner}</td>"


def _verdict_class(verdict: object) -> str:
    """CSS class of a verdict; only the known words get a colour, so data can't pick a class."""
    word = str(verdict)
    return f"v-{word}" if word in _VERDICTS else "v-other"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; ``rows`` hold cells already rendered by :func:`_td` (hence escaped)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _strategy_rank(s: object) -> int:
    return STRATEGY_ORDER.index(str(s)) if str(s) in STRATEGY_ORDER else len(STRATEGY_ORDER)


def _sorted(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort with strategies in freezing order (scratch, head_only, partial, full, others)
    and the direct chain first, so every table and plot reads in the same order."""

    def key(col: pd.Series) -> pd.Series:
        if col.name == "strategy":
            return col.map(lambda s: (_strategy_rank(s), str(s)))
        if col.name == "chain":
            return col.map(lambda c: (c != "direct", str(c)))
        return col

    return frame.sort_values(list(by), key=key, kind="stable").reset_index(drop=True)


def _strategies(values: Iterable[object]) -> list[str]:
    return sorted({str(v) for v in values}, key=lambda s: (_strategy_rank(s), s))


# --------------------------------------------------------------------------- plotting


def _figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, without pyplot, so no global backend is ever switched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


_FIGURES: ContextVar[list[tuple[str, bytes]] | None] = ContextVar("xfer_report_figures", default=None)
"""While :func:`render_report` runs with ``figures=``: every figure's (alt text, PNG bytes), in page order."""


def _img(fig: Figure, alt: str) -> str:
    """Embed a figure as a base64 PNG so the page needs no sibling files."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    sink = _FIGURES.get()
    if sink is not None:
        sink.append((alt, buf.getvalue()))
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


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


def _colour(strategy: str) -> str:
    """One colour per strategy across every figure; scratch is always grey."""
    palette = {"scratch": "#555555", "head_only": "#1f77b4", "partial": "#ff7f0e",
               "full": "#2ca02c"}
    extra = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")
    return palette.get(strategy, extra[sum(map(ord, strategy)) % len(extra)])


def _grouped_bars(ax: Axes, table: pd.DataFrame, ylabel: str, title: str) -> None:
    """Bars grouped by the table's index, one bar per column (strategy)."""
    n_groups, n_bars = table.shape
    width = 0.8 / max(n_bars, 1)
    x = np.arange(n_groups)
    for i, col in enumerate(table.columns):
        ax.bar(x + (i - (n_bars - 1) / 2) * width, table[col].to_numpy(dtype=float), width,
               label=str(col), color=_colour(str(col)))
    ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def _legend_above(fig: Figure, ax: Axes) -> None:
    """One legend above the panels, where it cannot hide a bar."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=max(len(labels), 1), fontsize=8)


# --------------------------------------------------------------------------- sections


def _header(study: Study) -> str:
    """Section 1: what was studied, how much evidence there is, and on which metric."""
    r = study.results
    counts = {
        "pairs": r["pair"].nunique(),
        "cells": len(r.drop_duplicates(list(CELL_COLUMNS))),
        "fits": len(r),
        "seeds": r["seed"].nunique(),
        "folds": r["fold"].nunique(),
    }
    facts = [
        ("Generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("Study directory", str(study.root)),
        *((k.capitalize(), str(v)) for k, v in counts.items()),
        ("Metric", f"{study.metric} (higher is better)"
                   + (f": {METRIC_MEANING[study.metric]}" if study.metric in METRIC_MEANING else "")),
        ("Target type", _target_type(study)),
        ("Pair names", ", ".join(sorted(r["pair"].astype(str).unique()))),
        ("Strategies", ", ".join(_strategies(r["strategy"]))),
        ("Fractions", ", ".join(fmt_fraction(f) for f in sorted(r["fraction"].unique()))),
    ]
    rows = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    sections = [*_TOC, *([("pooled", "Pooled across targets")] if _has_rows(study.root / "pooled.parquet") else []),
                *([("screen", "Transferability pre-screen")] if (study.root / "screen.parquet").is_file() else [])]
    toc = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in sections)
    return (f"<header>\n<h1>{_e(study.name)}</h1>\n<table class=\"facts\">{rows}</table>\n"
            f"<nav><ol>{toc}</ol></nav>\n</header>")


def _has_rows(path: Path) -> bool:
    try:
        return path.is_file() and not _read_parquet(path).empty
    except XferInputError:
        return False


def _target_type(study: Study) -> str:
    """From the spec when it says so; otherwise implied by the primary metric."""
    candidates = [study.spec, *(v for v in study.spec.values() if isinstance(v, Mapping))]
    for block in candidates:
        for key in ("target_type", "target"):
            if block.get(key) in ("volatility", "return"):
                return str(block[key])
    return METRIC_TARGET.get(study.metric, "unknown")


def _below_baseline(rec: Mapping[str, Any]) -> bool:
    """Positive against scratch, yet not above the best practitioner baseline.

    Only when a baseline was fitted (``best_baseline`` names one) and ``beats_baseline`` is
    explicitly false: a cell without baselines gets no mark rather than a false alarm.
    """
    name, beats = rec.get("best_baseline"), rec.get("beats_baseline")
    return (str(rec.get("verdict")) == "positive" and isinstance(name, str) and bool(name)
            and isinstance(beats, bool | np.bool_) and not bool(beats))


BELOW_BASELINE_BADGE = '<span class="badge below-baseline">below baseline</span>'


def _verdict_td(rec: Mapping[str, Any]) -> str:
    """The verdict cell; a positive verdict that does not beat the best baseline gets a badge."""
    cls = _verdict_class(rec["verdict"])
    if _below_baseline(rec):
        return _td_html(f"{_e(rec['verdict'])} {BELOW_BASELINE_BADGE}", f"{cls} below-baseline")
    return _td(rec["verdict"], cls)


def _baseline_text(rec: Mapping[str, Any]) -> str:
    name = rec.get("best_baseline")
    return f"{name} {fmt_score(rec.get('best_baseline_score'))}" if isinstance(name, str) and name else "—"


def _vs_baseline_text(rec: Mapping[str, Any]) -> str:
    name = rec.get("best_baseline")
    if not (isinstance(name, str) and name):
        return "—"
    return (f"{fmt_delta(rec.get('delta_vs_baseline'))} "
            f"{fmt_ci(rec.get('delta_vs_baseline_ci_low'), rec.get('delta_vs_baseline_ci_high'))}")


def _adjustment_text(frame: pd.DataFrame, count_column: str | None = None) -> str:
    """``Holm over 24 comparisons``, from the table's own ``adjustment``/``n_comparisons``
    columns when it has them (verdicts), else Holm over its rows with a p-value (comparisons)."""
    names = ({str(a) for a in frame["adjustment"].dropna()} if "adjustment" in frame.columns
             else {"holm"}) or {"holm"}
    method = ", ".join(_ADJUSTMENTS.get(n, n) for n in sorted(names))
    if count_column and count_column in frame.columns and frame[count_column].notna().any():
        n = int(frame[count_column].max())
    else:
        n = int(frame["p_value"].notna().sum())
    return f"{method} over {n} comparison{'s' if n != 1 else ''}"


def _headline(study: Study) -> str:
    """Section 2: every cell against scratch and against the best practitioner baseline, with
    the interval, the adjusted p-value and the smallest effect the design could detect."""
    title = "Headline: transfer vs scratch"
    v = study.table("verdicts")
    if v is None:
        return _section("headline", title, _note(study.notes["verdicts"]))
    m = study.metric
    rows = []
    for rec in _sorted(v, [*CELL_COLUMNS]).to_dict("records"):
        rows.append([
            _td(rec["pair"]), _td(rec["chain"]), _td(rec["strategy"]),
            _td(fmt_fraction(rec["fraction"])), _td(_dann(rec["dann_weight"])),
            _td(fmt_score(rec["test_score"])), _td(fmt_score(rec["scratch_score"])),
            _td(_baseline_text(rec)),
            _td(fmt_delta(rec["delta"])), _td(fmt_ci(rec["delta_ci_low"], rec["delta_ci_high"])),
            _td(fmt_p(rec["p_adjusted"])), _td(fmt_half_width(rec["detectable_effect"])),
            _verdict_td(rec), _td(_vs_baseline_text(rec)),
            _td(f"{fmt_count(rec['n_days'])} × {fmt_count(rec['n_seeds'])}"),
        ])
    headers = ["pair", "chain", "strategy", "fraction", "DANN", f"test {m}", f"scratch {m}",
               f"best baseline ({m})", "delta vs scratch", "95% CI (unadjusted)", "p (adjusted)",
               "detectable effect", "verdict", "vs best baseline [95% CI]", "days × seeds"]
    estimand = _note(
        f"delta is the expected per-day {m} difference between the cell and scratch on the "
        "target's test days (walk-forward test blocks pooled, paired day by day and seed by "
        "seed); its interval: an equally-weighted-cosine long-run variance of the day differences "
        "plus the seeds' own variance, Student t (calibrated on simulated nulls and oracle effects: "
        f"CALIBRATION.md), and the verdict reads the p-value adjusted by "
        f"{_adjustment_text(v, 'n_comparisons')} at 5%.")
    reading = _note(
        "positive / negative: adjusted p < 0.05, by the sign of delta; inconclusive otherwise "
        "(an unadjusted interval that excludes 0 can still be inconclusive). Detectable effect = "
        "the |delta| this design finds with 80% power after the table's adjustment: an "
        "inconclusive row with a detectable effect larger than any effect that matters means "
        "'not enough data', not 'no effect'.")
    baselines = _note(
        "Best baseline: the better of the practitioner's simple models (HAR-RV and EWMA for "
        "volatility, zero and ridge for returns), fitted on the rows scratch trains on and scored "
        "on the same days; 'vs best baseline' is the cell minus it, paired the same way. A "
        "positive verdict marked 'below baseline' beats scratch but not that simple model.")
    return _section("headline", title, estimand + reading + baselines + _table(headers, rows))


def _matrix_label(strategy: object, dann: object, many_dann: bool) -> str:
    return f"{strategy} (DANN {_dann(dann)})" if many_dann else str(strategy)


def _verdict_matrix(study: Study) -> str:
    """Section 3: where negative transfer sits, per pair and chain, as a heatmap and a table."""
    title = "Negative-transfer verdict matrix"
    v = study.table("verdicts")
    if v is None:
        return _section("matrix", title, _note(study.notes["verdicts"]))
    v = v[v["verdict"].astype(str) != "baseline"]
    if v.empty:
        return _section("matrix", title, _note("verdicts.parquet holds only scratch baselines."))
    parts = [_note("Rows: strategies; columns: target fraction; colour: delta vs scratch "
                   "(green better, red worse); text: the verdict (Holm-adjusted, as in the "
                   "headline); 'below baseline' (†in the heatmap): positive vs scratch but not "
                   "above the best practitioner baseline.")]
    for (pair, chain), g in _sorted(v, ["pair", "chain"]).groupby(["pair", "chain"], sort=False):
        many_dann = g["dann_weight"].nunique() > 1
        g = _sorted(g.assign(row=[_matrix_label(s, d, many_dann)
                                  for s, d in zip(g["strategy"], g["dann_weight"], strict=True)]),
                    ["strategy", "dann_weight", "fraction"])
        rows = list(dict.fromkeys(g["row"]))
        cols = sorted(g["fraction"].unique())
        delta = g.pivot_table(index="row", columns="fraction", values="delta", aggfunc="mean")
        delta = delta.reindex(index=rows, columns=cols)
        word = g.groupby(["row", "fraction"])["verdict"].first()
        below = (g.assign(_below=[_below_baseline(r) for r in g.to_dict("records")])
                 .groupby(["row", "fraction"])["_below"].any())
        label = f"{pair} | {chain}"
        parts.append(f"<h3>{_e(label)}</h3>")
        marked = word.where(~below.reindex(word.index, fill_value=False), word + "†")
        parts.append(_img(_heatmap(delta, marked, label, study.metric),
                          f"verdict heatmap {label}"))
        body = []
        for r in rows:
            cells = [_td(r)]
            for c in cols:
                w = word.get((r, c))
                if w is None:
                    cells.append(_td("—"))
                elif below.get((r, c), False):
                    cells.append(_td_html(f"{_e(w)} {_e(fmt_delta(delta.loc[r, c]))} "
                                          f"{BELOW_BASELINE_BADGE}",
                                          f"{_verdict_class(w)} below-baseline"))
                else:
                    cells.append(_td(f"{w} {fmt_delta(delta.loc[r, c])}", _verdict_class(w)))
            body.append(cells)
        parts.append(_table(["strategy", *(fmt_fraction(c) for c in cols)], body))
    return _section("matrix", title, "\n".join(parts))


def _heatmap(delta: pd.DataFrame, word: pd.Series, label: str, metric: str) -> Figure:
    """Delta as colour (symmetric around 0 so white means no effect), verdict as text."""
    import matplotlib

    values = delta.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = _figure(2.2 + 1.2 * values.shape[1], 1.2 + 0.6 * values.shape[0])
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


def _scratch_reference(curves: pd.DataFrame, pair: object, chain: object,
                       dann: object) -> pd.DataFrame:
    """Scratch's curve for a figure: scratch is trained once per pair, usually filed under
    the direct chain with DANN off, so fall back to that when the exact key has none."""
    s = curves[(curves["strategy"] == "scratch") & (curves["pair"] == pair)]
    for mask in ((s["chain"] == chain) & (s["dann_weight"] == dann),
                 (s["chain"] == "direct") & (s["dann_weight"] == 0.0)):
        if mask.any():
            return s[mask].sort_values("fraction")
    return s.sort_values("fraction")


def _sizing_curves(study: Study) -> str:
    """Section 4: the test metric against target fraction, per strategy, with scratch's
    full-data score as the line each curve has to reach."""
    title = "Data-sizing curves"
    curves = study.table("curves")
    if curves is None:
        return _section("curves", title, _note(study.notes["curves"]))
    is_baseline = curves["strategy"].astype(str).isin(BASELINE_STRATEGIES)
    models, baselines = curves[~is_baseline], curves[is_baseline]
    transfer = models[models["strategy"] != "scratch"]
    keys = transfer if not transfer.empty else models
    parts = [_note("Mean day score with its 90% band (day-level interval, as the verdicts) per strategy; "
                   "the black dashed line is scratch trained on all the target data, and where "
                   "a curve crosses it is that strategy's required fraction (next section). "
                   "Thin dashed lines are the practitioner baselines fitted on the same target "
                   "rows as scratch: reference levels, not transfer strategies.")]
    if keys.empty:
        parts.append(_note("curves.parquet holds only baseline curves: no figure."))
    groups = _sorted(keys, ["pair", "chain", "dann_weight"]).groupby(
        ["pair", "chain", "dann_weight"], sort=False)
    for (pair, chain, dann), g in groups:
        label = f"{pair} | {chain}" + ("" if float(dann) == 0.0 else f" | DANN {_dann(dann)}")
        ref = _scratch_reference(models, pair, chain, dann)
        base = baselines[baselines["pair"] == pair]
        parts.append(f"<h3>{_e(label)}</h3>")
        parts.append(_img(_curve_figure(g, ref, label, study.metric, base),
                          f"sizing curve {label}"))
    return _section("curves", title, "\n".join(parts))


_BASELINE_COLOURS = {"har_rv": "#8c564b", "ewma": "#bcbd22", "zero": "#7f7f7f",
                     "ridge": "#17becf"}


def _curve_figure(g: pd.DataFrame, scratch: pd.DataFrame, label: str, metric: str,
                  baselines: pd.DataFrame | None = None) -> Figure:
    """Strategies' curves with bands, scratch dotted, scratch at full data as the black dashed
    target line, and each baseline (one per target, whatever the chain) as a thin dashed line."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    baselines = baselines if baselines is not None else g.iloc[:0]
    for name, gg in sorted(baselines.groupby("strategy"), key=lambda t: str(t[0])):
        gg = gg.groupby("fraction")["mean"].mean().sort_index()
        ax.plot(gg.index.to_numpy(dtype=float), gg.to_numpy(dtype=float), "--", marker="x",
                linewidth=1, markersize=4, color=_BASELINE_COLOURS.get(str(name), "#999999"),
                label=f"{name} (baseline)")
    lines = [(s, gg) for s, gg in g.groupby("strategy") if s != "scratch"]
    if not scratch.empty:
        lines.insert(0, ("scratch", scratch))
    for strategy, gg in sorted(lines, key=lambda t: _strategy_rank(t[0])):
        gg = gg.groupby("fraction")[["mean", "ci_low", "ci_high"]].mean().sort_index()
        x = gg.index.to_numpy(dtype=float)
        colour = _colour(str(strategy))
        style = ":" if strategy == "scratch" else "-"
        ax.plot(x, gg["mean"], style, marker="o", color=colour, label=str(strategy))
        ax.fill_between(x, gg["ci_low"].to_numpy(dtype=float), gg["ci_high"].to_numpy(dtype=float),
                        color=colour, alpha=0.15, linewidth=0)
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


def _rule_bounds(rule: str) -> tuple[float, float] | None:
    """``"10-20%"`` -> (0.1, 0.2), so a measured fraction can be placed against the rule."""
    try:
        lo, hi = rule.strip().rstrip("%").split("-")
        return float(lo) / 100, float(hi) / 100
    except ValueError:
        return None


def _against_rule(required: float, low: float, high: float, rule: str | None) -> str:
    """Place the measured fraction against the rule, reading the interval before the point
    so that an uncertain measurement is not called a confirmation or a refutation."""
    bounds = _rule_bounds(rule) if rule else None
    if bounds is None or math.isnan(required):
        return "—"
    if math.isinf(required):
        return "not reached: needs more than the rule"
    lo, hi = bounds
    if not math.isnan(high) and high < lo:
        return "less data than the rule"
    if not math.isnan(low) and low > hi:
        return "more data than the rule"
    if lo <= required <= hi:
        return "within the rule"
    return "interval overlaps the rule"


def _required_fraction(study: Study) -> str:
    """Section 5: the measured required fraction beside the article's rule of thumb."""
    title = "Required target fraction vs the rule of thumb"
    sizing = study.table("sizing")
    if sizing is None:
        return _section("sizing", title, _note(study.notes["sizing"]))
    rows = []
    has_mono = "monotone_fraction" in sizing.columns and sizing["monotone_fraction"].notna().any()
    for rec in _sorted(sizing, ["pair", "chain", "dann_weight", "strategy"]).to_dict("records"):
        strategy = str(rec["strategy"])
        from_file = rec.get("rule_of_thumb")
        rule = RULE_OF_THUMB.get(strategy) or (from_file if isinstance(from_file, str)
                                               and from_file else None)
        req, low, high = (float(rec[c]) for c in ("required_fraction", "ci_low", "ci_high"))
        mono = [float(rec.get(c, math.nan)) for c in ("monotone_fraction", "monotone_ci_low", "monotone_ci_high")]
        main = mono if has_mono and math.isfinite(mono[1]) else [req, low, high]
        rows.append([
            _td(rec["pair"]), _td(rec["chain"]), _td(_dann(rec["dann_weight"])), _td(strategy),
            *([_td(f"{fmt_fraction(mono[0])} [{fmt_fraction(mono[1])}, {fmt_fraction(mono[2])}]")]
              if has_mono else []),
            _td(fmt_fraction(req)), _td(f"[{fmt_fraction(low)}, {fmt_fraction(high)}]"),
            _td(fmt_fraction(rec["reached_share"])),
            _td(rule or "—"), _td(_against_rule(*main, rule)),
        ])
    headers = ["pair", "chain", "DANN", "strategy",
               *(["required fraction, monotone fit [90% joint band]"] if has_mono else []),
               "first passage" if has_mono else "required fraction", "interval",
               "reached in (bootstrap share)", "article's rule of thumb", "reading"]
    intro = _note(("Required fraction (main figure): the smallest target fraction at which an isotonic "
                   "(more data never hurts) fit of the strategy's mean score reaches scratch trained on all "
                   "the target data, with an interval from a 90% joint band over all fractions that covers "
                   "the true required fraction whenever the band covers the curve (calibrated: "
                   "CALIBRATION.md, sizing suite); the reading uses it. First passage: the older, noisier "
                   "figure (the first fraction whose measured mean reaches scratch, bootstrap interval). "
                   if has_mono else
                   "Required fraction: the smallest target fraction whose mean score reaches "
                   "scratch trained on all the target data. ")
                  + "'not reached' means no tested fraction got there. The rule of thumb is the seed "
                  "article's claim.")
    return _section("sizing", title, intro + _table(headers, rows))


_COMPARISON_TITLES = {"chain_vs_direct": "Chain vs direct", "dann_vs_none": "DANN vs none"}


def _comparisons(study: Study) -> str:
    """Section 6: do intermediate markets or DANN beat the plain direct transfer?"""
    title = "Chain vs direct, DANN vs none"
    comp = study.table("comparisons")
    if comp is None:
        return _section("comparisons", title, _note(study.notes["comparisons"]))
    parts = [_note(f"delta = variant − baseline (here 'baseline' is the direct transfer or DANN "
                   f"off), the expected per-day {study.metric} difference on the target's test "
                   "days, paired day by day and seed by seed, with its unadjusted 95% interval "
                   "(day-level long-run variance and seed variance, Student t); the verdict reads the "
                   f"p-value adjusted by {_adjustment_text(comp)} (this table) at 5%. Detectable "
                   "effect = the |delta| found with 80% power after that adjustment.")]
    kinds = [*_COMPARISON_TITLES, *sorted(set(comp["kind"].astype(str)) - set(_COMPARISON_TITLES))]
    for kind in kinds:
        g = comp[comp["kind"].astype(str) == kind]
        parts.append(f"<h3>{_e(_COMPARISON_TITLES.get(kind, kind))}</h3>")
        if g.empty:
            parts.append(_note(f"No {kind} comparison in comparisons.parquet."))
            continue
        rows = [[_td(r["pair"]), _td(r["variant"]), _td(r["baseline"]), _td(r["strategy"]),
                 _td(fmt_fraction(r["fraction"])), _td(fmt_delta(r["delta"])),
                 _td(fmt_ci(r["delta_ci_low"], r["delta_ci_high"])), _td(fmt_p(r["p_adjusted"])),
                 _td(fmt_half_width(r["detectable_effect"])),
                 _td(r["verdict"], _verdict_class(r["verdict"])), _td(fmt_count(r["n_days"]))]
                for r in _sorted(g, ["pair", "variant", "strategy", "fraction"]).to_dict("records")]
        parts.append(_table(["pair", "variant", "baseline", "strategy", "fraction",
                             f"delta {study.metric}", "95% CI (unadjusted)", "p (adjusted)",
                             "detectable effect", "verdict", "n days"], rows))
    return _section("comparisons", title, "\n".join(parts))


def _regime_columns(study: Study) -> dict[str, str]:
    metric = study.metric
    labels = {"high_vol": "high volatility", "low_vol": "low volatility"}
    return {f"regime_{k}_{metric}": v for k, v in labels.items()
            if f"regime_{k}_{metric}" in study.results.columns}


def _periods_regimes(study: Study) -> str:
    """Section 7: does the result hold in every test period and volatility regime, or does
    one fold or one regime carry the pooled number?"""
    title = "Periods and regimes"
    r = study.results
    regimes = _regime_columns(study)
    parts = [_note(f"Mean test {study.metric} per strategy, pooled over chains, fractions, "
                   "DANN weights and seeds; per walk-forward test fold and per volatility "
                   "regime of the target (split at its training-window median).")]
    if not regimes:
        parts.append(_note(f"No regime_<high_vol|low_vol>_{study.metric} columns in "
                           "results.parquet: regime table omitted."))
    for pair, g in _sorted(r, ["pair"]).groupby("pair", sort=False):
        strategies = _strategies(g["strategy"])
        period = (g["fold"].astype(str) + ": " + _dates(g["test_start"]) + ".."
                  + _dates(g["test_end"]))
        folds = (g.assign(period=period)
                 .pivot_table(index=["fold", "period"], columns="strategy", values="test_score",
                              aggfunc="mean")
                 .reindex(columns=strategies).droplevel("fold"))
        parts.append(f"<h3>{_e(pair)}</h3>")
        parts.append(_pivot_table(folds, "fold: test period", fmt_score))
        by_regime = None
        if regimes:
            by_regime = (g.groupby("strategy")[list(regimes)].mean().T
                         .rename(index=regimes).reindex(columns=strategies))
            parts.append(_pivot_table(by_regime, "regime", fmt_score))
        parts.append(_img(_periods_figure(folds, by_regime, str(pair), study.metric),
                          f"periods and regimes {pair}"))
    return _section("periods", title, "\n".join(parts))


def _dates(col: pd.Series) -> pd.Series:
    """Test-period bounds as plain dates, whether stored as text or as timestamps."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.dt.strftime("%Y-%m-%d")
    return col.astype(str)


def _pivot_table(frame: pd.DataFrame, index_name: str, fmt: Any) -> str:
    """A pivot (index x strategies) as an HTML table."""
    rows = [[_td(idx), *(_td(fmt(frame.loc[idx, c])) for c in frame.columns)]
            for idx in frame.index]
    return _table([index_name, *(str(c) for c in frame.columns)], rows)


def _periods_figure(folds: pd.DataFrame, regimes: pd.DataFrame | None, pair: str,
                    metric: str) -> Figure:
    fig = _figure(9.0 if regimes is not None else 5.5, 3.4)
    axes = fig.subplots(1, 2 if regimes is not None else 1, squeeze=False)[0]
    _grouped_bars(axes[0], folds, f"test {metric}", f"{pair}: per test fold")
    if regimes is not None:
        _grouped_bars(axes[1], regimes, f"test {metric}", f"{pair}: per regime")
    _legend_above(fig, axes[0])
    return fig


def _family_label(column: str) -> str:
    return column.removeprefix("importance_").replace("_", " ")


def _importance(study: Study) -> str:
    """Section 8: which feature families each model leans on, transferred next to scratch."""
    title = "Feature importance"
    r = study.results
    cols = [c for c in r.columns if c.startswith("importance_")]
    if not cols:
        return _section("importance", title, _note(
            "No importance_<family> columns in results.parquet: section omitted."))
    families = {c: _family_label(c) for c in cols}
    how = _note(
        f"Importance = the drop in test {study.metric} when one feature family is shuffled "
        "(permutation importance; higher = the model relies on it more). A transfer that "
        f"rests on the universal families ({', '.join(_UNIVERSAL)}) more than scratch does is "
        "carrying over patterns that generalise; one that leans on the same target-specific "
        "families as scratch (e.g. market structure) may be memorising target idiosyncrasies "
        "rather than transferring.")
    parts = [how]
    for pair, g in _sorted(r, ["pair"]).groupby("pair", sort=False):
        strategies = _strategies(g["strategy"])
        per_cell = (_sorted(g, ["strategy", "fraction"])
                    .groupby(["strategy", "fraction"], sort=False)[cols].mean()
                    .rename(columns=families))
        per_cell.index = [f"{s} @ {fmt_fraction(f)}" for s, f in per_cell.index]
        per_strategy = (g.groupby("strategy")[cols].mean().rename(columns=families)
                        .reindex(strategies).T)
        parts.append(f"<h3>{_e(pair)}</h3>")
        parts.append(_pivot_table(per_cell, "strategy @ fraction", fmt_score))
        fig = _figure(6.4, 3.4)
        ax = fig.add_subplot()
        _grouped_bars(ax, per_strategy, f"importance (drop in {study.metric})",
                      f"{pair}: mean over fractions")
        _legend_above(fig, ax)
        parts.append(_img(fig, f"feature importance {pair}"))
    return _section("importance", title, "\n".join(parts))


def _hyperparameters(study: Study) -> str:
    """Section 9: what the search chose, so a reviewer can check e.g. the ~10x lower
    fine-tuning learning rate the article recommends."""
    title = "Chosen hyperparameters"
    r = study.results
    epochs = "best_epoch" in r.columns and bool(r["best_epoch"].notna().any())
    extra = {"best_epoch": ("best_epoch", "mean")} if epochs else {}
    agg = (_sorted(r, [*CELL_COLUMNS])
           .groupby(list(CELL_COLUMNS), sort=False)
           .agg(fits=("seed", "size"), lr=("lr", "mean"), lr_ratio=("lr_ratio", "mean"),
                weight_decay=("weight_decay", "mean"), best_step=("best_step", "mean"),
                eval_every=("eval_every", "mean"), **extra)
           .reset_index())
    rows = [[_td(rec["pair"]), _td(rec["chain"]), _td(rec["strategy"]),
             _td(fmt_fraction(rec["fraction"])), _td(_dann(rec["dann_weight"])),
             _td(rec["fits"]), _td(fmt_general(rec["lr"])), _td(fmt_general(rec["lr_ratio"])),
             _td(fmt_general(rec["weight_decay"])), _td(fmt_general(rec["best_step"])),
             _td(fmt_general(rec["eval_every"])),
             *([_td(fmt_general(rec["best_epoch"]))] if epochs else [])]
            for rec in agg.to_dict("records")]
    headers = ["pair", "chain", "strategy", "fraction", "DANN", "fits", "mean lr",
               "mean lr ratio", "mean weight decay", "mean best step", "eval every (steps)",
               *(["mean best epoch"] if epochs else [])]
    intro = _note("Means over seeds and folds of the values chosen on validation; lr ratio is "
                  "the fine-tuning LR over the source LR (the article's rule: about 0.1). Best "
                  "step: the optimiser step of the weights kept by early stopping (validation "
                  "every 'eval every' steps).")
    return _section("hyperparameters", title, intro + _table(headers, rows))


def _pooled(study: Study) -> str:
    """Section 10, only when the study has 3 or more direct targets: effects pooled across targets
    (random effects), with the between-target spread and a prediction interval for a new target."""
    path = study.root / "pooled.parquet"
    if not path.is_file():
        return ""
    frame = _read_parquet(path)
    if missing := _missing(frame, POOLED_COLUMNS):
        raise _stale(study.root, [(path, missing)])
    if frame.empty:
        return ""
    rows = [[_td(r["group"]), _td(r["strategy"]), _td(fmt_fraction(r["fraction"])), _td(r["versus"]),
             _td(fmt_count(r["n_targets"])), _td(fmt_delta(r["estimate"])), _td(fmt_ci(r["ci_low"], r["ci_high"])),
             _td(fmt_p(r["p_adjusted"])), _td(fmt_general(r["tau2"] ** 0.5)), _td(fmt_ci(r["pi_low"], r["pi_high"])),
             _td(fmt_half_width(r["detectable_effect"])), _td(r["verdict"], _verdict_class(r["verdict"]))]
            for r in _sorted(frame, ["group", "versus", "strategy", "fraction"]).to_dict("records")]
    intro = _note(f"Does transfer work for this kind of target? Per group of targets (all, and each asset class "
                  f"with 3 or more), the mean target's {study.metric} difference against scratch at the same "
                  "fraction or a practitioner baseline, with its 95% interval (random effects; the day "
                  "noise that targets share is read from the days, so a market-wide day is not counted "
                  "once per target); p adjusted by Holm within each reference (one family per question); tau = the "
                  "between-target spread of true effects; the prediction interval is where a new target's "
                  "effect would fall; detectable effect = found with 80% power at the table's level.")
    return _section("pooled", "Pooled across targets", intro + _table(
        ["group", "strategy", "fraction", "versus", "targets", f"delta {study.metric}", "95% CI",
         "p (adjusted)", "tau", "95% prediction interval", "detectable effect", "verdict"], rows))


def _screen(study: Study) -> str:
    """Section 10, only for a study run with ``screen: true``: the pre-screen's ranking of each
    target's sources (computed before any fine-tuning), beside the measured gain over scratch."""
    path = study.root / "screen.parquet"
    if not path.is_file():
        return ""
    frame = _read_parquet(path)
    if missing := _missing(frame, ("source", "target", "rank", "score")):
        raise _stale(study.root, [(path, missing)])
    verdicts = study.tables.get("verdicts")
    gain: dict[tuple[str, str], float] = {}
    if verdicts is not None and {"source", "target", "delta", "chain"} <= set(verdicts.columns):
        v = verdicts[(verdicts["chain"] == "direct") & (verdicts["dann_weight"] == 0)]
        gain = {(str(k[0]), str(k[1])): float(x) for k, x in v.groupby(["source", "target"])["delta"].mean().items()}
    stats = [c for c in ("energy", "coef_cos", "zero_shot_r2", "probe_acc", "source_skill") if c in frame.columns]
    rows = [[_td(r["target"]), _td(r["source"]), _td(int(r["rank"])), _td(fmt_general(r["score"])),
             *[_td(fmt_general(r[c])) for c in stats],
             _td(fmt_general(gain[str(r["source"]), str(r["target"])]) if (str(r["source"]), str(r["target"])) in gain
                 else "")]
            for r in frame.sort_values(["target", "rank"]).to_dict("records")]
    intro = _note("Computed before any fine-tuning, from the training windows only (xfer pairs screen; "
                  "rank 1 = most promising). 'measured gain' is the mean delta vs scratch over the "
                  "study's transfer cells of that pair (verdicts.parquet). RESULTS.md measures how well "
                  "the screen predicts it on the embedded data.")
    return _section("screen", "Transferability pre-screen",
                    intro + _table(["target", "source", "rank", "score", *stats, "measured gain"], rows))


_TOC = (
    ("headline", "Headline: transfer vs scratch"),
    ("matrix", "Negative-transfer verdict matrix"),
    ("curves", "Data-sizing curves"),
    ("sizing", "Required target fraction vs the rule of thumb"),
    ("comparisons", "Chain vs direct, DANN vs none"),
    ("periods", "Periods and regimes"),
    ("importance", "Feature importance"),
    ("hyperparameters", "Chosen hyperparameters"),
)

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: .3em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.facts th { text-align: left; }
.v-positive { background: #c8efc8; } .v-negative { background: #f6c3c3; }
.v-inconclusive { background: #e4e4e4; } .v-baseline { background: #f7f7f7; color: #777; }
.note { color: #555; font-style: italic; }
.badge { display: inline-block; margin-left: .3em; padding: 0 .4em; border-radius: 3px;
         font-size: 11px; font-style: normal; white-space: nowrap; }
.badge.below-baseline { background: #fff3cd; color: #7a5b00; border: 1px solid #e0b84c; }
td.below-baseline { background: repeating-linear-gradient(135deg, #c8efc8 0 6px, #e6f5d0 6px 12px); }
img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
"""


def render_report(study_dir: Path, figures: list[tuple[str, bytes]] | None = None) -> str:
    """The report's HTML text; raises before anything is written if the study is unreadable.

    ``figures``: a list that receives every figure as (alt text, PNG bytes), in page order."""
    token = _FIGURES.set(figures)
    try:
        return _render(study_dir)
    finally:
        _FIGURES.reset(token)


def _render(study_dir: Path) -> str:
    study = load_study(study_dir)
    sections = [
        _header(study),
        _headline(study),
        _verdict_matrix(study),
        _sizing_curves(study),
        _required_fraction(study),
        _comparisons(study),
        _periods_regimes(study),
        _importance(study),
        _hyperparameters(study),
        _pooled(study),
        _screen(study),
    ]
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_e(study.name)} — xfer report</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def write_report(study_dir: Path, out: Path | None = None, figures: Path | None = None) -> Path:
    """Write the report (default ``study_dir/report.html``) and return its path.

    Rendering finishes in memory first and the file is written to a temporary sibling and
    renamed, so a failure never leaves a half-written or stale-looking report behind.
    ``figures``: also write each of the report's figures as a PNG file in this directory (the
    same images the page embeds; names from :func:`figure_names`).
    """
    pngs: list[tuple[str, bytes]] | None = [] if figures is not None else None
    text = render_report(study_dir) if pngs is None else render_report(study_dir, pngs)
    target = Path(out) if out is not None else Path(study_dir) / REPORT_NAME
    if figures is not None and pngs is not None:  # (both or neither)
        figures.mkdir(parents=True, exist_ok=True)
        for name, (_, png) in zip(figure_names([a for a, _ in pngs]), pngs, strict=True):
            atomic_write(figures / name, lambda tmp, png=png: Path(tmp).write_bytes(png))
    write_text(target, text)
    return target


__all__ = ["REPORT_NAME", "Study", "figure_names", "load_study", "render_report", "write_report"]
