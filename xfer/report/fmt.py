"""How the report writes numbers, orders rows and describes table cells.

Everything here returns plain text or data; the HTML is in the templates
(``xfer/report/templates``), which escape every value on the way into the page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xfer.evaluate.contract import STRATEGY_ORDER

CELL_COLUMNS = ("pair", "chain", "strategy", "fraction", "dann_weight")
"""What identifies a cell on the page (source and target are implied by the pair)."""

VERDICTS = ("positive", "negative", "inconclusive", "baseline")
ADJUSTMENTS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "fdr_bh": "Benjamini-Hochberg"}

# --------------------------------------------------------------------------- numbers


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


def fmt_dann(x: object) -> str:
    """DANN weight 0.0 is the contract's "DANN off"."""
    return "off" if _finite(x) == 0.0 else fmt_general(x)


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One table cell as the templates draw it (``macros.html.j2``: ``td``).

    ``text`` is data and is escaped; ``cls`` is a CSS class chosen by the report, never by
    data; ``badge`` appends the 'below baseline' badge after the text.
    """

    text: str
    cls: str | None = None
    badge: bool = False


def td(value: object, cls: str | None = None, *, badge: bool = False) -> Cell:
    return Cell(str(value), cls, badge)


def verdict_class(verdict: object) -> str:
    """CSS class of a verdict; only the known words get a colour, so data can't pick a class."""
    word = str(verdict)
    return f"v-{word}" if word in VERDICTS else "v-other"


def below_baseline(rec: Mapping[str, Any]) -> bool:
    """Positive against scratch, yet not above the best practitioner baseline.

    Only when a baseline was fitted (``best_baseline`` names one) and ``beats_baseline`` is
    explicitly false: a cell without baselines gets no mark rather than a false alarm.
    """
    name, beats = rec.get("best_baseline"), rec.get("beats_baseline")
    return (str(rec.get("verdict")) == "positive" and isinstance(name, str) and bool(name)
            and isinstance(beats, bool | np.bool_) and not bool(beats))


def pivot_table(frame: pd.DataFrame, index_name: str, fmt: Any) -> dict[str, Any]:
    """A pivot (index x strategies) as a table: ``{"headers": [...], "rows": [[Cell...]...]}``."""
    rows = [[td(idx), *(td(fmt(frame.loc[idx, c])) for c in frame.columns)]
            for idx in frame.index]
    return {"headers": [index_name, *(str(c) for c in frame.columns)], "rows": rows}


def adjustment_text(frame: pd.DataFrame, count_column: str | None = None) -> str:
    """``Holm over 24 comparisons``, from the table's own ``adjustment``/``n_comparisons``
    columns when it has them (verdicts), else Holm over its rows with a p-value (comparisons)."""
    names = ({str(a) for a in frame["adjustment"].dropna()} if "adjustment" in frame.columns
             else {"holm"}) or {"holm"}
    method = ", ".join(ADJUSTMENTS.get(n, n) for n in sorted(names))
    if count_column and count_column in frame.columns and frame[count_column].notna().any():
        n = int(frame[count_column].max())
    else:
        n = int(frame["p_value"].notna().sum())
    return f"{method} over {n} comparison{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- order


def strategy_rank(s: object) -> int:
    return STRATEGY_ORDER.index(str(s)) if str(s) in STRATEGY_ORDER else len(STRATEGY_ORDER)


def sort_cells(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort with strategies in freezing order (scratch, head_only, partial, full, others)
    and the direct chain first, so every table and plot reads in the same order."""

    def key(col: pd.Series) -> pd.Series:
        if col.name == "strategy":
            return col.map(lambda s: (strategy_rank(s), str(s)))
        if col.name == "chain":
            return col.map(lambda c: (c != "direct", str(c)))
        return col

    return frame.sort_values(list(by), key=key, kind="stable").reset_index(drop=True)


def strategies(values: Iterable[object]) -> list[str]:
    return sorted({str(v) for v in values}, key=lambda s: (strategy_rank(s), s))
