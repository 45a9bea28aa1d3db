"""Section 5: the measured required target fraction beside the seed article's rule of thumb."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from xfer.evaluate.contract import RULE_OF_THUMB
from xfer.report.fmt import Cell, fmt_dann, fmt_fraction, sort_cells, td
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

MONOTONE = ("Required fraction (main figure): the smallest target fraction at which an isotonic "
            "(more data never hurts) fit of the strategy's mean score reaches scratch trained on all "
            "the target data, with an interval from a 90% joint band over all fractions that covers "
            "the true required fraction whenever the band covers the curve (calibrated: "
            "CALIBRATION.md, sizing suite); the reading uses it. First passage: the older, noisier "
            "figure (the first fraction whose measured mean reaches scratch, bootstrap interval). ")
FIRST_PASSAGE = ("Required fraction: the smallest target fraction whose mean score reaches "
                 "scratch trained on all the target data. ")
RULE = "'not reached' means no tested fraction got there. The rule of thumb is the seed article's claim."


def rule_bounds(rule: str) -> tuple[float, float] | None:
    """``"10-20%"`` -> (0.1, 0.2), so a measured fraction can be placed against the rule."""
    try:
        lo, hi = rule.strip().rstrip("%").split("-")
        return float(lo) / 100, float(hi) / 100
    except ValueError:
        return None


def against_rule(required: float, low: float, high: float, rule: str | None) -> str:
    """Place the measured fraction against the rule, reading the interval before the point
    so that an uncertain measurement is not called a confirmation or a refutation."""
    bounds = rule_bounds(rule) if rule else None
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


def row(rec: Mapping[str, Any], has_mono: bool) -> list[Cell]:
    strategy = str(rec["strategy"])
    from_file = rec.get("rule_of_thumb")
    rule = RULE_OF_THUMB.get(strategy) or (from_file if isinstance(from_file, str)
                                           and from_file else None)
    req, low, high = (float(rec[c]) for c in ("required_fraction", "ci_low", "ci_high"))
    mono = [float(rec.get(c, math.nan)) for c in ("monotone_fraction", "monotone_ci_low", "monotone_ci_high")]
    main = mono if has_mono and math.isfinite(mono[1]) else [req, low, high]
    return [
        td(rec["pair"]), td(rec["chain"]), td(fmt_dann(rec["dann_weight"])), td(strategy),
        *([td(f"{fmt_fraction(mono[0])} [{fmt_fraction(mono[1])}, {fmt_fraction(mono[2])}]")]
          if has_mono else []),
        td(fmt_fraction(req)), td(f"[{fmt_fraction(low)}, {fmt_fraction(high)}]"),
        td(fmt_fraction(rec["reached_share"])),
        td(rule or "—"), td(against_rule(*main, rule)),
    ]


def section(study: Study) -> Markup:
    sizing = study.table("sizing")
    if sizing is None:
        return render("sections/sizing.html.j2", title=TITLES["sizing"],
                      missing=study.notes["sizing"])
    has_mono = "monotone_fraction" in sizing.columns and sizing["monotone_fraction"].notna().any()
    rows = [row(rec, has_mono) for rec in
            sort_cells(sizing, ["pair", "chain", "dann_weight", "strategy"]).to_dict("records")]
    headers = ["pair", "chain", "DANN", "strategy",
               *(["required fraction, monotone fit [90% joint band]"] if has_mono else []),
               "first passage" if has_mono else "required fraction", "interval",
               "reached in (bootstrap share)", "article's rule of thumb", "reading"]
    intro = (MONOTONE if has_mono else FIRST_PASSAGE) + RULE
    return render("sections/sizing.html.j2", title=TITLES["sizing"], missing=None, intro=intro,
                  headers=headers, rows=rows)
