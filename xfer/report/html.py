"""The local HTML report of a study: one self-contained page a reviewer can open offline.

The page is one file on purpose: plots are matplotlib PNGs embedded as base64, CSS is inline,
there is no JavaScript and nothing is fetched from the network, so the page can be mailed,
archived or attached to a review and still show exactly what the study found.

It is assembled here from jinja2 templates shipped with the package (``templates/``: the
page, shared macros, the stylesheet and one template per section) and one module per section
(:mod:`xfer.report.sections`) that computes what its template shows; the study directory is
read and validated once by :mod:`xfer.report.study` before anything is rendered, so an
unreadable or stale directory (:class:`xfer.evaluate.tables.StaleTableError`) is refused
before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from xfer.io import atomic_write, write_text
from xfer.report.figures import FIGURES, figure_names
from xfer.report.sections.comparisons import section as _comparisons
from xfer.report.sections.curves import section as _sizing_curves
from xfer.report.sections.header import section as _header
from xfer.report.sections.headline import section as _headline
from xfer.report.sections.hyperparameters import section as _hyperparameters
from xfer.report.sections.importance import section as _importance
from xfer.report.sections.matrix import section as _verdict_matrix
from xfer.report.sections.periods import section as _periods_regimes
from xfer.report.sections.pooled import section as _pooled
from xfer.report.sections.screen import section as _screen
from xfer.report.sections.sizing import section as _required_fraction
from xfer.report.study import Study, load_study
from xfer.report.templating import render, stylesheet

REPORT_NAME = "report.html"


def render_report(study_dir: Path, figures: list[tuple[str, bytes]] | None = None) -> str:
    """The report's HTML text; raises before anything is written if the study is unreadable.

    ``figures``: a list that receives every figure as (alt text, PNG bytes), in page order."""
    token = FIGURES.set(figures)
    try:
        return _render(study_dir)
    finally:
        FIGURES.reset(token)


def _render(study_dir: Path) -> str:
    study = load_study(study_dir)
    # page order, which is also the order figures are drawn in (and handed to ``figures=``);
    # each section is a module-level name here, looked up per page (a test replaces one)
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
    return str(render("page.html.j2", name=study.name, css=stylesheet(), sections=sections))


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
