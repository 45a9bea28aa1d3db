"""Section 11, only for a study run with ``screen: true``: the pre-screen's ranking of each
target's sources (computed before any fine-tuning), beside the measured gain over scratch."""

from __future__ import annotations

from markupsafe import Markup

from xfer.report.fmt import fmt_general, td
from xfer.report.sections import TITLES
from xfer.report.study import Study, missing_columns, read_parquet, stale_error
from xfer.report.templating import render

INTRO = ("Computed before any fine-tuning, from the training windows only (xfer pairs screen; "
         "rank 1 = most promising). 'measured gain' is the mean delta vs scratch over the "
         "study's transfer cells of that pair (verdicts.parquet). RESULTS.md measures how well "
         "the screen predicts it on the embedded data.")
STATISTICS = ("energy", "coef_cos", "zero_shot_r2", "probe_acc", "source_skill")


def measured_gain(study: Study) -> dict[tuple[str, str], float]:
    """Mean delta vs scratch per (source, target) over the direct, DANN-off cells."""
    verdicts = study.tables.get("verdicts")
    if verdicts is None or not {"source", "target", "delta", "chain"} <= set(verdicts.columns):
        return {}
    v = verdicts[(verdicts["chain"] == "direct") & (verdicts["dann_weight"] == 0)]
    return {(str(k[0]), str(k[1])): float(x)
            for k, x in v.groupby(["source", "target"])["delta"].mean().items()}


def section(study: Study) -> Markup:
    """Nothing (no heading either) without a screen.parquet."""
    path = study.root / "screen.parquet"
    if not path.is_file():
        return Markup("")
    frame = read_parquet(path)
    if missing := missing_columns(frame, ("source", "target", "rank", "score")):
        raise stale_error(study.root, [(path, missing)])
    gain = measured_gain(study)
    stats = [c for c in STATISTICS if c in frame.columns]
    rows = [[td(r["target"]), td(r["source"]), td(int(r["rank"])), td(fmt_general(r["score"])),
             *[td(fmt_general(r[c])) for c in stats],
             td(fmt_general(gain[str(r["source"]), str(r["target"])]) if (str(r["source"]), str(r["target"])) in gain
                else "")]
            for r in frame.sort_values(["target", "rank"]).to_dict("records")]
    return render("sections/screen.html.j2", title=TITLES["screen"], intro=INTRO,
                  headers=["target", "source", "rank", "score", *stats, "measured gain"], rows=rows)
