"""Section 6: do intermediate markets (chains) or DANN beat the plain direct transfer?"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from xfer.report.fmt import (
    adjustment_text,
    fmt_ci,
    fmt_count,
    fmt_delta,
    fmt_fraction,
    fmt_half_width,
    fmt_p,
    sort_cells,
    td,
    verdict_class,
)
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

KIND_TITLES = {"chain_vs_direct": "Chain vs direct", "dann_vs_none": "DANN vs none"}


def intro(metric: str, adjustment: str) -> str:
    return (f"delta = variant − baseline (here 'baseline' is the direct transfer or DANN "
            f"off), the expected per-day {metric} difference on the target's test "
            "days, paired day by day and seed by seed, with its unadjusted 95% interval "
            "(day-level long-run variance and seed variance, Student t); the verdict reads the "
            f"p-value adjusted by {adjustment} (this table) at 5%. Detectable "
            "effect = the |delta| found with 80% power after that adjustment.")


def section(study: Study) -> Markup:
    comp = study.table("comparisons")
    if comp is None:
        return render("sections/comparisons.html.j2", title=TITLES["comparisons"],
                      missing=study.notes["comparisons"])
    headers = ["pair", "variant", "baseline", "strategy", "fraction", f"delta {study.metric}",
               "95% CI (unadjusted)", "p (adjusted)", "detectable effect", "verdict", "n days"]
    kinds: list[dict[str, Any]] = []
    for kind in [*KIND_TITLES, *sorted(set(comp["kind"].astype(str)) - set(KIND_TITLES))]:
        g = comp[comp["kind"].astype(str) == kind]
        rows = [[td(r["pair"]), td(r["variant"]), td(r["baseline"]), td(r["strategy"]),
                 td(fmt_fraction(r["fraction"])), td(fmt_delta(r["delta"])),
                 td(fmt_ci(r["delta_ci_low"], r["delta_ci_high"])), td(fmt_p(r["p_adjusted"])),
                 td(fmt_half_width(r["detectable_effect"])),
                 td(r["verdict"], verdict_class(r["verdict"])), td(fmt_count(r["n_days"]))]
                for r in sort_cells(g, ["pair", "variant", "strategy", "fraction"]).to_dict("records")]
        kinds.append({"title": KIND_TITLES.get(kind, kind), "rows": rows,
                      "empty": f"No {kind} comparison in comparisons.parquet."})
    return render("sections/comparisons.html.j2", title=TITLES["comparisons"], missing=None,
                  intro=intro(study.metric, adjustment_text(comp)), headers=headers, kinds=kinds)
