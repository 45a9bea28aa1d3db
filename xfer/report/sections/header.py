"""Section 1, the page's header: what was studied, how much evidence there is, on which
metric, and the table of contents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from markupsafe import Markup

from xfer.report.fmt import CELL_COLUMNS, fmt_fraction, strategies
from xfer.report.sections import OPTIONAL, TITLES
from xfer.report.study import Study, has_rows
from xfer.report.templating import render

METRIC_MEANING = {
    "r2_oos": "out-of-sample R² per test day, against the training window's label variance",
    "skill": "forecast skill per test day (standardised forecast × return / training-window "
             "return scale; 0 for any forecast of an unpredictable return)",
}
"""One phrase per verdict metric for the header (see xfer.evaluate.scores)."""
METRIC_TARGET = {"r2_oos": "volatility", "skill": "return", "r2": "volatility", "ic": "return"}
"""Target type implied by the verdict metric (r2/ic: studies written before r2_oos/skill)."""


def target_type(study: Study) -> str:
    """From the spec when it says so; otherwise implied by the primary metric."""
    candidates = [study.spec, *(v for v in study.spec.values() if isinstance(v, Mapping))]
    for block in candidates:
        for key in ("target_type", "target"):
            if block.get(key) in ("volatility", "return"):
                return str(block[key])
    return METRIC_TARGET.get(study.metric, "unknown")


def facts(study: Study) -> list[tuple[str, str]]:
    """The header's (name, value) lines."""
    r = study.results
    counts = {
        "pairs": r["pair"].nunique(),
        "cells": len(r.drop_duplicates(list(CELL_COLUMNS))),
        "fits": len(r),
        "seeds": r["seed"].nunique(),
        "folds": r["fold"].nunique(),
    }
    return [
        ("Generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("Study directory", str(study.root)),
        *((k.capitalize(), str(v)) for k, v in counts.items()),
        ("Metric", f"{study.metric} (higher is better)"
                   + (f": {METRIC_MEANING[study.metric]}" if study.metric in METRIC_MEANING else "")),
        ("Target type", target_type(study)),
        ("Pair names", ", ".join(sorted(r["pair"].astype(str).unique()))),
        ("Strategies", ", ".join(strategies(r["strategy"]))),
        ("Fractions", ", ".join(fmt_fraction(f) for f in sorted(r["fraction"].unique()))),
    ]


def contents(study: Study) -> list[tuple[str, str]]:
    """(anchor, title) of every section the page has: the optional ones only with their table."""
    present = {"pooled": has_rows(study.root / "pooled.parquet"),
               "screen": (study.root / "screen.parquet").is_file()}
    return [(a, t) for a, t in TITLES.items() if a not in OPTIONAL or present[a]]


def section(study: Study) -> Markup:
    return render("sections/header.html.j2", name=study.name, facts=facts(study),
                  contents=contents(study))
