"""The report's jinja2 environment: templates and the stylesheet shipped as package data
(``xfer/report/templates``, see ``[tool.setuptools.package-data]``).

Every value a template prints is escaped (``autoescape=True``). The escaping itself is the
standard library's :func:`html.escape` (``&quot;``, ``&#x27;``), applied by ``finalize``
before autoescape sees the value, so the page is byte for byte what the report wrote before
it had templates; autoescape then leaves the already-escaped text alone. Only the report's
own pieces are :class:`~markupsafe.Markup` (rendered sections, macros, the stylesheet):
nothing from a study directory is ever marked safe.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

STYLESHEET = "report.css"


def _escape(value: Any) -> Any:
    """``finalize``: escape a value the way the report always has; Markup passes unchanged."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("xfer.report", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=StrictUndefined,  # a name a template expects but was not given is an error
        trim_blocks=True,  # a line holding only a {% tag %} leaves nothing in the page
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> Markup:
    """Render one template (``sections/headline.html.j2``...) into page-ready HTML."""
    return Markup(environment().get_template(template).render(**context))


def stylesheet() -> Markup:
    """The report's CSS, inlined into the page's <style> (the page loads nothing)."""
    return Markup(files("xfer.report").joinpath("templates", STYLESHEET).read_text(encoding="utf-8"))
