"""The HTML report: one self-contained, escaped page with every section, written atomically.

The fake study below follows xfer.evaluate.contract column for column, so these tests also
catch the report drifting away from the contract other tools rely on.
"""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import xfer.io as xfer_io
import xfer.report.html as report_html
from xfer.evaluate.contract import (
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    RESULTS_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.report import render_report, write_report

PAIRS = {"us_stocks->wti": ("us_stocks", "wti"), "spx,ndx->gold": ("spx,ndx", "gold")}
CHAINS = ("direct", "a>b")
STRATEGIES = ("scratch", "head_only", "full")
FRACTIONS = (0.1, 0.5, 1.0)
FAMILIES = ("mean_reversion", "volatility", "momentum", "market_structure")
EVIL = '<script>alert("x")</script>'
HEADINGS = (
    "Headline: transfer vs scratch",
    "Negative-transfer verdict matrix",
    "Data-sizing curves",
    "Required target fraction vs the rule of thumb",
    "Chain vs direct, DANN vs none",
    "Periods and regimes",
    "Feature importance",
    "Chosen hyperparameters",
)
LIFT = {"scratch": 0.0, "head_only": 0.06, "full": 0.03}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NEGATIVE_CELL = ("us_stocks->wti", "direct", "head_only", 0.1)
NEGATIVE_DELTA = -0.0312
INF_CELL = ("spx,ndx->gold", "a>b", "full")


def _cells() -> Iterator[tuple[str, str, str, str, str, float]]:
    """(pair, source, target, chain, strategy, fraction); scratch is trained once per pair."""
    for pair, (source, target) in PAIRS.items():
        for chain in CHAINS:
            for strategy in STRATEGIES:
                if strategy == "scratch" and chain != "direct":
                    continue
                for fraction in FRACTIONS:
                    yield pair, source, target, chain, strategy, fraction


def _results() -> pd.DataFrame:
    rows = []
    for i, (pair, source, target, chain, strategy, fraction) in enumerate(_cells()):
        for seed in (0, 1):
            for fold in (0, 1):
                score = 0.1 + 0.2 * fraction + 0.01 * seed - 0.02 * fold + 0.001 * i
                row = {
                    "pair": pair, "source": source, "target": target, "chain": chain,
                    "strategy": strategy, "fraction": fraction, "dann_weight": 0.0,
                    "seed": seed, "fold": fold, "metric": "r2", "val_score": 0.9 - score,
                    "test_score": score, "cell_id": f"c{i}", "trial_number": seed,
                    "lr": 1e-3 if strategy == "scratch" else 1e-4,
                    "weight_decay": 1e-4, "lr_ratio": 1.0 if strategy == "scratch" else 0.1,
                    "epochs": 20, "best_epoch": 12, "n_train": int(1000 * fraction),
                    "n_test": 250, "test_start": f"202{fold}-01-02", "test_end": f"202{fold}-12-30",
                    "seconds": 1.5, "test_r2": score, "test_qlike": 0.3,
                    "regime_high_vol_r2": score - 0.05, "regime_low_vol_r2": score + 0.05,
                    "domain_acc": float("nan"), "domain_probe_acc": float("nan"),
                }
                row.update({f"importance_{f}": 0.01 * (k + 1) * (2 if strategy == "scratch"
                                                                  else 1)
                            for k, f in enumerate(FAMILIES)})
                rows.append(row)
    frame = pd.DataFrame(rows)
    assert set(RESULTS_COLUMNS) <= set(frame.columns)
    return frame


def _verdicts() -> pd.DataFrame:
    rows = []
    for i, (pair, source, target, chain, strategy, fraction) in enumerate(_cells()):
        if strategy == "scratch":
            delta, lo, hi, verdict = 0.0, 0.0, 0.0, "baseline"
        elif (pair, chain, strategy, fraction) == NEGATIVE_CELL:
            delta, lo, hi, verdict = NEGATIVE_DELTA, -0.05, -0.01, "negative"
        elif i % 2:
            delta, lo, hi, verdict = 0.0101 * i, 0.001, 0.02 * i, "positive"
        else:
            delta, lo, hi, verdict = 0.0007 * i, -0.01, 0.01, "inconclusive"
        rows.append({"pair": pair, "source": source, "target": target, "chain": chain,
                     "strategy": strategy, "fraction": fraction, "dann_weight": 0.0,
                     "metric": "r2", "test_score": 0.3 + delta, "scratch_score": 0.3,
                     "delta": delta, "delta_ci_low": lo, "delta_ci_high": hi,
                     "verdict": verdict, "n_pairs": 4})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def _curves() -> pd.DataFrame:
    rows = [{"pair": pair, "source": source, "target": target, "chain": chain,
             "strategy": strategy, "dann_weight": 0.0, "fraction": fraction, "metric": "r2",
             "mean": 0.1 + 0.2 * fraction + LIFT[strategy],
             "ci_low": 0.07 + 0.2 * fraction + LIFT[strategy],
             "ci_high": 0.13 + 0.2 * fraction + LIFT[strategy], "n": 4}
            for pair, source, target, chain, strategy, fraction in _cells()]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _sizing() -> pd.DataFrame:
    rows = []
    for pair, source, target, chain, strategy, fraction in _cells():
        if fraction != 1.0:
            continue
        inf = (pair, chain, strategy) == INF_CELL
        req = math.inf if inf else {"scratch": 1.0, "head_only": 0.1, "full": 0.5}[strategy]
        rows.append({"pair": pair, "source": source, "target": target, "chain": chain,
                     "strategy": strategy, "dann_weight": 0.0, "metric": "r2",
                     "required_fraction": req, "ci_low": 0.1 if not inf else math.inf,
                     "ci_high": math.inf, "reached_share": 0.0 if inf else 0.8,
                     "rule_of_thumb": RULE_OF_THUMB.get(strategy)})
    return pd.DataFrame(rows, columns=list(SIZING_COLUMNS))


def _comparisons() -> pd.DataFrame:
    rows = []
    for pair in PAIRS:
        for strategy in ("head_only", "full"):
            rows.append({"pair": pair, "kind": "chain_vs_direct", "variant": "a>b",
                         "baseline": "direct", "strategy": strategy, "fraction": 0.5,
                         "metric": "r2", "delta": 0.0123, "delta_ci_low": 0.002,
                         "delta_ci_high": 0.03, "verdict": "positive", "n_pairs": 4})
        rows.append({"pair": pair, "kind": "dann_vs_none", "variant": EVIL, "baseline": "0.0",
                     "strategy": "full", "fraction": 1.0, "metric": "r2", "delta": -0.0044,
                     "delta_ci_low": -0.01, "delta_ci_high": 0.003, "verdict": "inconclusive",
                     "n_pairs": 4})
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def make_study(root: Path, *, name: str | None = f"Demo {EVIL}") -> Path:
    """A study directory exactly as xfer.evaluate.contract describes it."""
    root.mkdir(parents=True, exist_ok=True)
    if name is not None:
        (root / "spec.json").write_text(json.dumps({"name": name, "target_type": "volatility"}))
    _results().to_parquet(root / "results.parquet")
    _verdicts().to_parquet(root / "verdicts.parquet")
    _curves().to_parquet(root / "curves.parquet")
    _sizing().to_parquet(root / "sizing.parquet")
    _comparisons().to_parquet(root / "comparisons.parquet")
    return root


def section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


def table_rows(fragment: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", fragment, re.S)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("report") / "demo_study")


@pytest.fixture(scope="module")
def page(study: Path) -> str:
    return write_report(study).read_text(encoding="utf-8")


def test_written_atomically_to_default_path(study: Path, page: str) -> None:
    path = study / "report.html"
    assert path.is_file() and path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    leftovers = [p.name for p in study.iterdir() if p.name.endswith(".tmp") or
                 p.name.startswith(".report")]
    assert leftovers == []


def test_explicit_out_path(study: Path, tmp_path: Path) -> None:
    out = write_report(study, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]


def test_render_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_study(tmp_path / "s")
    before = sorted(p.name for p in root.iterdir())

    def boom(_study: object) -> str:
        raise RuntimeError("section failed")

    monkeypatch.setattr(report_html, "_importance", boom)
    with pytest.raises(RuntimeError, match="section failed"):
        write_report(root)
    assert sorted(p.name for p in root.iterdir()) == before


def test_write_failure_removes_temp_and_keeps_old_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_study(tmp_path / "s")
    monkeypatch.setattr(report_html, "render_report", lambda _d: "new")
    (root / "report.html").write_text("old")
    before = sorted(p.name for p in root.iterdir())

    def failing_replace(_src: object, _dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(xfer_io.os, "replace", failing_replace)  # the one atomic writer
    with pytest.raises(OSError, match="disk full"):
        write_report(root)
    assert sorted(p.name for p in root.iterdir()) == before
    assert (root / "report.html").read_text() == "old"


def test_sections_in_order(page: str) -> None:
    assert "<h1>" in page and "Generated" in page
    positions = [page.find(f"<h2>{h}</h2>") for h in HEADINGS]
    assert all(p >= 0 for p in positions), dict(zip(HEADINGS, positions, strict=True))
    assert positions == sorted(positions)


def test_header_counts_metric_and_target(page: str) -> None:
    header = page[page.find("<header>"):page.find("</header>")]
    facts = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", header))
    assert facts["Pairs"] == str(len(PAIRS)) and facts["Fits"] == str(len(_results()))
    assert facts["Cells"] == str(len(list(_cells())))
    assert facts["Seeds"] == "2" and facts["Folds"] == "2"
    assert facts["Metric"].startswith("r2") and facts["Target type"] == "volatility"


def test_headline_shows_verdicts_and_deltas(page: str) -> None:
    rows = table_rows(section(page, "headline"))
    verdicts = _verdicts()
    assert len(rows) == len(verdicts) + 1  # + header row
    text = "\n".join(rows)
    for rec in verdicts.to_dict("records"):
        assert f"{rec['delta']:+.4f}" in text
        assert f">{rec['verdict']}<" in text
    negative = [r for r in rows if f"{NEGATIVE_DELTA:+.4f}" in r]
    assert len(negative) == 1
    assert '<td class="v-negative">negative</td>' in negative[0]
    assert '<td class="v-positive">positive</td>' in text
    assert '<td class="v-inconclusive">inconclusive</td>' in text


def test_verdict_matrix_has_heatmap_and_table_per_pair_chain(page: str) -> None:
    matrix = section(page, "matrix")
    assert matrix.count("<img ") == len(PAIRS) * len(CHAINS)
    assert "us_stocks-&gt;wti | a&gt;b" in matrix
    assert f"negative {NEGATIVE_DELTA:+.4f}" in matrix


def test_sizing_table_not_reached_and_rule_of_thumb(page: str) -> None:
    rows = table_rows(section(page, "sizing"))
    head_only = [r for r in rows if "<td>head_only</td>" in r]
    assert head_only and all(f"<td>{RULE_OF_THUMB['head_only']}</td>" in r for r in head_only)
    pair, chain, strategy = (s.replace(">", "&gt;") for s in INF_CELL)
    inf_row = [r for r in rows if f"<td>{pair}</td><td>{chain}</td>" in r
               and f"<td>{strategy}</td>" in r]
    assert len(inf_row) == 1 and "<td>not reached</td>" in inf_row[0]


def test_every_image_is_an_embedded_png(page: str) -> None:
    tags = re.findall(r"<img [^>]*>", page)
    payloads = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert tags and len(payloads) == len(tags)
    for payload in payloads:
        assert base64.b64decode(payload, validate=True).startswith(PNG_SIGNATURE)
    sizing_keys = _curves()[["pair", "chain"]].drop_duplicates()
    assert section(page, "curves").count("<img ") >= len(sizing_keys)


def test_no_network_or_script(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(//|[a-z]+:(?!image/png;base64))""", page,
                         re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_data_strings_are_escaped(page: str) -> None:
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f"<h1>Demo {escaped}</h1>" in page
    assert escaped in section(page, "comparisons")
    assert "us_stocks-&gt;wti" in page and "us_stocks->wti" not in page


def test_other_sections_show_their_numbers(page: str) -> None:
    comparisons = section(page, "comparisons")
    assert "<h3>Chain vs direct</h3>" in comparisons and "<h3>DANN vs none</h3>" in comparisons
    assert "+0.0123" in comparisons and "-0.0044" in comparisons
    periods = section(page, "periods")
    assert "0: 2020-01-02..2020-12-30" in periods and "high volatility" in periods
    assert periods.count("<img ") == len(PAIRS)
    importance = section(page, "importance")
    assert "memorising target idiosyncrasies" in importance
    assert "<th>market structure</th>" in importance and importance.count("<img ") == len(PAIRS)
    hyper = section(page, "hyperparameters")
    assert "<td>0.0001</td>" in hyper and "<td>0.1</td>" in hyper


def test_missing_or_empty_optional_files_omit_sections(tmp_path: Path) -> None:
    root = make_study(tmp_path / "bare_study", name=None)
    for stem in ("verdicts", "curves", "comparisons"):
        (root / f"{stem}.parquet").unlink()
    pd.DataFrame(columns=list(SIZING_COLUMNS)).to_parquet(root / "sizing.parquet")
    page = render_report(root)
    assert "<h1>bare_study</h1>" in page
    for anchor, stem in (("headline", "verdicts"), ("matrix", "verdicts"), ("curves", "curves"),
                         ("comparisons", "comparisons")):
        body = section(page, anchor)
        assert f"{stem}.parquet is missing" in body and "<table" not in body
        assert "<img " not in body
    assert "sizing.parquet is empty" in section(page, "sizing")
    assert "<table" in section(page, "periods") and "<table" in section(page, "hyperparameters")


def test_missing_results_names_the_file(tmp_path: Path) -> None:
    root = make_study(tmp_path / "s")
    (root / "results.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"results\.parquet"):
        write_report(root)
    assert not (root / "report.html").exists()


def test_results_missing_a_column_names_file_and_column(tmp_path: Path) -> None:
    root = make_study(tmp_path / "s")
    _results().drop(columns=["test_score"]).to_parquet(root / "results.parquet")
    with pytest.raises(ValueError, match=r"results\.parquet.*test_score"):
        render_report(root)


def test_importing_the_report_does_not_import_matplotlib() -> None:
    code = "import sys, xfer.report; print('matplotlib' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize(("required", "low", "high", "rule", "reading"), [
    (0.15, 0.1, 0.2, "10-20%", "within the rule"),
    (0.05, 0.02, 0.08, "10-20%", "less data than the rule"),
    (0.9, 0.85, 1.0, "60-80%", "more data than the rule"),
    (0.9, 0.5, 1.0, "60-80%", "interval overlaps the rule"),
    (math.inf, math.inf, math.inf, "30-50%", "not reached: needs more than the rule"),
    (0.5, 0.4, 0.6, None, "—"),
])
def test_required_fraction_reading(required: float, low: float, high: float, rule: str | None,
                                   reading: str) -> None:
    assert report_html._against_rule(required, low, high, rule) == reading


@pytest.mark.parametrize(("fractions", "scale"), [((0.1, 0.5, 1.0), "linear"),
                                                  ((0.05, 0.5, 1.0), "log")])
def test_sizing_axis_is_log_when_fractions_span_over_10x(fractions: tuple[float, ...],
                                                         scale: str) -> None:
    curve = pd.DataFrame({"strategy": "full", "fraction": fractions, "mean": 0.1,
                          "ci_low": 0.0, "ci_high": 0.2})
    fig = report_html._curve_figure(curve, curve.assign(strategy="scratch"), "p | direct", "r2")
    assert fig.axes[0].get_xscale() == scale
