"""The rendered page read back by a real HTML parser (the standard library's): every section the
table of contents promises is there under its heading, every element is closed where it was
opened and sits in a parent that may hold it, nothing points off the page, and a ``<script>``
in a study name or a market name arrives as text.

No browser is involved (none can run here); this is the structural check that the templates
(``xfer/report/templates``) still produce the page the tests in test_html.py read with regexes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from tests.report.test_html import EVIL, HEADINGS, make_study
from xfer.evaluate.contract import POOLED_COLUMNS
from xfer.report import render_report

MARKET = f"{EVIL}wti"
"""A market (the target of one pair) whose name is a script tag."""
OPTIONAL_HEADINGS = {"pooled": "Pooled across targets", "screen": "Transferability pre-screen"}

VOID = {"meta", "img"}
PARENTS: dict[str, set[str] | None] = {
    "html": {""}, "head": {"html"}, "body": {"html"}, "meta": {"head"}, "title": {"head"},
    "style": {"head"}, "header": {"body"}, "section": {"body"}, "nav": {"header"},
    "ol": {"nav"}, "li": {"ol"}, "a": {"li"}, "h1": {"header"}, "h2": {"section"},
    "h3": {"section"}, "p": {"section"}, "img": {"section"}, "table": {"header", "section"},
    "thead": {"table"}, "tbody": {"table"}, "tr": {"table", "thead", "tbody"}, "th": {"tr"},
    "td": {"tr"}, "span": {"td"},
}
"""Every element the page uses and the parents it may have: anything else (a ``<script>``, a
``<link>``, a table cell outside a row) is a finding."""


class PageParser(HTMLParser):
    """Checks nesting while it reads, and keeps what the assertions need."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.texts: dict[str, list[str]] = {}  # tag -> the text of each element of that tag
        self.sections: list[tuple[str, list[str]]] = []  # (id, the tags of its children, in order)
        self.nav: list[tuple[str, str]] = []  # (href, text)
        self.css = ""
        self._text: list[list[str]] = []

    def _where(self) -> str:
        line, col = self.getpos()
        return f"line {line}:{col} in {'/'.join(self.stack) or 'document'}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self.stack[-1] if self.stack else ""
        allowed = PARENTS.get(tag)
        if allowed is None:
            self.problems.append(f"<{tag}> is not an element this page uses ({self._where()})")
        elif parent not in allowed:
            self.problems.append(f"<{tag}> inside <{parent or 'document'}> ({self._where()})")
        values = {name: value or "" for name, value in attrs}
        self.attrs += [(tag, name, value) for name, value in values.items()]
        if parent == "section":
            self.sections[-1][1].append(tag)
        if tag == "section":
            self.sections.append((values.get("id", ""), []))
        if tag == "a":
            self.nav.append((values.get("href", ""), ""))
        if tag not in VOID:
            self.stack.append(tag)
            self._text.append([])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing <{tag}/> ({self._where()})")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"end tag </{tag}> of a void element ({self._where()})")
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}> "
                                 f"({self._where()})")
            if tag in self.stack:  # recover: unwind to the element it closes
                while self.stack[-1] != tag:
                    self.stack.pop()
                    self._text.pop()
            else:
                return
        self.stack.pop()
        text = "".join(self._text.pop())
        self.texts.setdefault(tag, []).append(text)
        if self._text:
            self._text[-1].append(text)
        if tag == "a":
            self.nav[-1] = (self.nav[-1][0], text)
        if tag == "style":
            self.css += text

    def handle_data(self, data: str) -> None:
        if self._text:
            self._text[-1].append(data)
        elif data.strip():
            self.problems.append(f"text outside <html>: {data[:40]!r}")

    def close(self) -> None:
        super().close()
        if self.stack:
            self.problems.append(f"never closed: {self.stack}")


def _evil_market(root: Path) -> None:
    """Rename the market ``wti`` to :data:`MARKET` in every table that names markets."""
    for path in root.glob("*.parquet"):
        frame = pd.read_parquet(path)
        for col in ("pair", "target"):
            if col in frame.columns:
                frame[col] = frame[col].astype(str).str.replace("wti", MARKET, regex=False)
        frame.to_parquet(path)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every section, the optional ones included, with a script tag in two kinds of names."""
    root = make_study(tmp_path_factory.mktemp("structure") / "study")
    row = {"group": "all", "strategy": "head_only", "fraction": 0.1, "dann_weight": 0.0,
           "versus": "scratch", "metric": "r2_oos", "n_targets": 3, "targets": "a,b,c",
           "estimate": 0.01, "ci_low": -0.01, "ci_high": 0.03, "p_value": 0.2, "p_adjusted": 0.4,
           "verdict": "inconclusive", "tau2": 0.0001, "pi_low": -0.02, "pi_high": 0.04,
           "detectable_effect": 0.02, "df": 2.0}
    pd.DataFrame([row], columns=list(POOLED_COLUMNS)).to_parquet(root / "pooled.parquet")
    pd.DataFrame([{"source": "us_stocks", "target": "wti", "rank": 1, "score": 0.5}]).to_parquet(
        root / "screen.parquet")
    _evil_market(root)
    return render_report(root)


@pytest.fixture(scope="module")
def parsed(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_tags_balance_and_nest(page: str, parsed: PageParser) -> None:
    assert page.startswith("<!DOCTYPE html>\n")
    assert parsed.problems == []
    assert parsed.texts["html"] and parsed.texts["body"] and parsed.texts["table"]


def test_every_promised_section_is_there_under_its_heading(parsed: PageParser) -> None:
    promised = [*HEADINGS, *OPTIONAL_HEADINGS.values()]
    assert [text for _, text in parsed.nav] == promised  # the table of contents
    anchors = [href.removeprefix("#") for href, _ in parsed.nav]
    assert [a for a, _ in parsed.sections] == anchors  # the sections, in the same order
    assert parsed.texts["h2"] == promised
    for anchor, children in parsed.sections:
        assert children[:1] == ["h2"], anchor
        assert len(children) > 1, f"section {anchor} holds nothing but its heading"
    assert {a: t for a, t in zip(anchors, promised, strict=True) if a in OPTIONAL_HEADINGS} \
        == OPTIONAL_HEADINGS


def test_nothing_is_fetched(parsed: PageParser) -> None:
    links = [(tag, name, value) for tag, name, value in parsed.attrs if name in ("src", "href")]
    assert links and all(value.startswith(("#", "data:image/png;base64,"))
                         for _, _, value in links), [v[:60] for *_, v in links]
    styles = [parsed.css, *(value for _, name, value in parsed.attrs if name == "style")]
    urls = [u for css in styles for u in re.findall(r"url\(\s*['\"]?([^'\")]*)", css)]
    for value in [*(v for *_, v in links), *urls]:
        assert "http://" not in value and "https://" not in value and not value.startswith("//")
    assert parsed.css.strip().startswith("body {")  # the stylesheet is inline


def test_script_in_study_and_market_names_is_text(page: str, parsed: PageParser) -> None:
    assert "<script" not in page.lower()
    assert parsed.texts["h1"] == [f"Demo {EVIL}"]
    assert f"us_stocks->{MARKET}" in parsed.texts["td"]  # headline, sizing, hyperparameters...
    assert f"us_stocks->{MARKET} | direct" in parsed.texts["h3"]
    assert MARKET in parsed.texts["td"]  # the screen's target column
    alts = [value for tag, name, value in parsed.attrs if tag == "img" and name == "alt"]
    assert f"verdict heatmap us_stocks->{MARKET} | direct" in alts
