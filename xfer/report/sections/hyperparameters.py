"""Section 9: what the search chose, so a reviewer can check e.g. the ~10x lower fine-tuning
learning rate the article recommends."""

from __future__ import annotations

from markupsafe import Markup

from xfer.report.fmt import CELL_COLUMNS, fmt_dann, fmt_fraction, fmt_general, sort_cells, td
from xfer.report.sections import TITLES
from xfer.report.study import Study
from xfer.report.templating import render

INTRO = ("Means over seeds and folds of the values chosen on validation; lr ratio is "
         "the fine-tuning LR over the source LR (the article's rule: about 0.1). Best "
         "step: the optimiser step of the weights kept by early stopping (validation "
         "every 'eval every' steps).")


def section(study: Study) -> Markup:
    r = study.results
    epochs = "best_epoch" in r.columns and bool(r["best_epoch"].notna().any())
    extra = {"best_epoch": ("best_epoch", "mean")} if epochs else {}
    agg = (sort_cells(r, [*CELL_COLUMNS])
           .groupby(list(CELL_COLUMNS), sort=False)
           .agg(fits=("seed", "size"), lr=("lr", "mean"), lr_ratio=("lr_ratio", "mean"),
                weight_decay=("weight_decay", "mean"), best_step=("best_step", "mean"),
                eval_every=("eval_every", "mean"), **extra)
           .reset_index())
    rows = [[td(rec["pair"]), td(rec["chain"]), td(rec["strategy"]),
             td(fmt_fraction(rec["fraction"])), td(fmt_dann(rec["dann_weight"])),
             td(rec["fits"]), td(fmt_general(rec["lr"])), td(fmt_general(rec["lr_ratio"])),
             td(fmt_general(rec["weight_decay"])), td(fmt_general(rec["best_step"])),
             td(fmt_general(rec["eval_every"])),
             *([td(fmt_general(rec["best_epoch"]))] if epochs else [])]
            for rec in agg.to_dict("records")]
    headers = ["pair", "chain", "strategy", "fraction", "DANN", "fits", "mean lr",
               "mean lr ratio", "mean weight decay", "mean best step", "eval every (steps)",
               *(["mean best epoch"] if epochs else [])]
    return render("sections/hyperparameters.html.j2", title=TITLES["hyperparameters"],
                  intro=INTRO, headers=headers, rows=rows)
