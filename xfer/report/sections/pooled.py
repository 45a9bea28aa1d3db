"""Section 10, only when the study has 3 or more direct targets: effects pooled across targets
(random effects), with the between-target spread and a prediction interval for a new target."""

from __future__ import annotations

from markupsafe import Markup

from xfer.evaluate.contract import POOLED_COLUMNS
from xfer.report.fmt import (
    fmt_ci,
    fmt_count,
    fmt_delta,
    fmt_fraction,
    fmt_general,
    fmt_half_width,
    fmt_p,
    sort_cells,
    td,
    verdict_class,
)
from xfer.report.sections import TITLES
from xfer.report.study import Study, missing_columns, read_parquet, stale_error
from xfer.report.templating import render


def intro(metric: str) -> str:
    return (f"Does transfer work for this kind of target? Per group of targets (all, and each asset class "
            f"with 3 or more), the mean target's {metric} difference against scratch at the same "
            "fraction or a practitioner baseline, with its 95% interval (random effects; the day "
            "noise that targets share is read from the days, so a market-wide day is not counted "
            "once per target); p adjusted by Holm within each reference (one family per question); tau = the "
            "between-target spread of true effects; the prediction interval is where a new target's "
            "effect would fall; detectable effect = found with 80% power at the table's level.")


def section(study: Study) -> Markup:
    """Nothing (no heading either) without a pooled.parquet that has rows."""
    path = study.root / "pooled.parquet"
    if not path.is_file():
        return Markup("")
    frame = read_parquet(path)
    if missing := missing_columns(frame, POOLED_COLUMNS):
        raise stale_error(study.root, [(path, missing)])
    if frame.empty:
        return Markup("")
    rows = [[td(r["group"]), td(r["strategy"]), td(fmt_fraction(r["fraction"])), td(r["versus"]),
             td(fmt_count(r["n_targets"])), td(fmt_delta(r["estimate"])), td(fmt_ci(r["ci_low"], r["ci_high"])),
             td(fmt_p(r["p_adjusted"])), td(fmt_general(r["tau2"] ** 0.5)), td(fmt_ci(r["pi_low"], r["pi_high"])),
             td(fmt_half_width(r["detectable_effect"])), td(r["verdict"], verdict_class(r["verdict"]))]
            for r in sort_cells(frame, ["group", "versus", "strategy", "fraction"]).to_dict("records")]
    headers = ["group", "strategy", "fraction", "versus", "targets", f"delta {study.metric}", "95% CI",
               "p (adjusted)", "tau", "95% prediction interval", "detectable effect", "verdict"]
    return render("sections/pooled.html.j2", title=TITLES["pooled"], intro=intro(study.metric),
                  headers=headers, rows=rows)
