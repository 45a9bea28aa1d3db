"""The report's sections, one module each, in page order; each module's ``section(study)``
computes what its template (``templates/sections/<name>.html.j2``) shows and renders it.

Sections follow the questions the seed article says a transfer claim must answer: is the
transfer better than scratch (a day-level interval, a Holm-adjusted verdict, and the smallest
effect the design could detect), is it better than the practitioner's simple baselines too,
how much target data each freezing strategy needs against the article's rules of thumb,
whether chains and DANN help, whether the result holds across periods and volatility
regimes, and whether it rests on universal feature families or memorised target
idiosyncrasies.
"""

TITLES = {
    "headline": "Headline: transfer vs scratch",
    "matrix": "Negative-transfer verdict matrix",
    "curves": "Data-sizing curves",
    "sizing": "Required target fraction vs the rule of thumb",
    "comparisons": "Chain vs direct, DANN vs none",
    "periods": "Periods and regimes",
    "importance": "Feature importance",
    "hyperparameters": "Chosen hyperparameters",
    "pooled": "Pooled across targets",
    "screen": "Transferability pre-screen",
}
"""Each section's anchor (its ``<section id>``) and heading, in page order; the last two
appear only for a study that has their table."""
OPTIONAL = ("pooled", "screen")
