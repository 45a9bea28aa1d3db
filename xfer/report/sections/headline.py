"""Section 2, the headline: every cell against scratch and against the best practitioner
baseline, with the interval, the adjusted p-value and the smallest effect the design could
detect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from xfer.report.fmt import (
    CELL_COLUMNS,
    Cell,
    adjustment_text,
    below_baseline,
    fmt_ci,
    fmt_count,
    fmt_dann,
    fmt_delta,
    fmt_fraction,
    fmt_half_width,
    fmt_p,
    fmt_score,
    sort_cells,
    td,
    verdict_class,
)
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

READING = (
    "positive / negative: adjusted p < 0.05, by the sign of delta; inconclusive otherwise "
    "(an unadjusted interval that excludes 0 can still be inconclusive). Detectable effect = "
    "the |delta| this design finds with 80% power after the table's adjustment: an "
    "inconclusive row with a detectable effect larger than any effect that matters means "
    "'not enough data', not 'no effect'.")
BASELINES = (
    "Best baseline: the better of the practitioner's simple models (HAR-RV and EWMA for "
    "volatility, zero and ridge for returns), fitted on the rows scratch trains on and scored "
    "on the same days; 'vs best baseline' is the cell minus it, paired the same way. A "
    "positive verdict marked 'below baseline' beats scratch but not that simple model.")


def estimand(metric: str, adjustment: str) -> str:
    return (
        f"delta is the expected per-day {metric} difference between the cell and scratch on the "
        "target's test days (walk-forward test blocks pooled, paired day by day and seed by "
        "seed); its interval: an equally-weighted-cosine long-run variance of the day differences "
        "plus the seeds' own variance, Student t (calibrated on simulated nulls and oracle effects: "
        f"CALIBRATION.md), and the verdict reads the p-value adjusted by "
        f"{adjustment} at 5%.")


def verdict_cell(rec: Mapping[str, Any]) -> Cell:
    """The verdict cell; a positive verdict that does not beat the best baseline gets a badge."""
    cls = verdict_class(rec["verdict"])
    if below_baseline(rec):
        return td(rec["verdict"], f"{cls} below-baseline", badge=True)
    return td(rec["verdict"], cls)


def baseline_text(rec: Mapping[str, Any]) -> str:
    name = rec.get("best_baseline")
    return f"{name} {fmt_score(rec.get('best_baseline_score'))}" if isinstance(name, str) and name else "—"


def vs_baseline_text(rec: Mapping[str, Any]) -> str:
    name = rec.get("best_baseline")
    if not (isinstance(name, str) and name):
        return "—"
    return (f"{fmt_delta(rec.get('delta_vs_baseline'))} "
            f"{fmt_ci(rec.get('delta_vs_baseline_ci_low'), rec.get('delta_vs_baseline_ci_high'))}")


def section(study: Study) -> Markup:
    v = study.table("verdicts")
    context: dict[str, Any] = {"title": TITLES["headline"]}
    if v is None:
        return render("sections/headline.html.j2", **context, missing=study.notes["verdicts"])
    m = study.metric
    rows = [[td(rec["pair"]), td(rec["chain"]), td(rec["strategy"]),
             td(fmt_fraction(rec["fraction"])), td(fmt_dann(rec["dann_weight"])),
             td(fmt_score(rec["test_score"])), td(fmt_score(rec["scratch_score"])),
             td(baseline_text(rec)),
             td(fmt_delta(rec["delta"])), td(fmt_ci(rec["delta_ci_low"], rec["delta_ci_high"])),
             td(fmt_p(rec["p_adjusted"])), td(fmt_half_width(rec["detectable_effect"])),
             verdict_cell(rec), td(vs_baseline_text(rec)),
             td(f"{fmt_count(rec['n_days'])} × {fmt_count(rec['n_seeds'])}")]
            for rec in sort_cells(v, [*CELL_COLUMNS]).to_dict("records")]
    headers = ["pair", "chain", "strategy", "fraction", "DANN", f"test {m}", f"scratch {m}",
               f"best baseline ({m})", "delta vs scratch", "95% CI (unadjusted)", "p (adjusted)",
               "detectable effect", "verdict", "vs best baseline [95% CI]", "days × seeds"]
    notes = [estimand(m, adjustment_text(v, "n_comparisons")), READING, BASELINES]
    return render("sections/headline.html.j2", **context, missing=None, notes=notes,
                  headers=headers, rows=rows)
