"""The HTML report: one self-contained, escaped page with every section, written atomically.

The fake study below follows xfer.evaluate.contract column for column, so these tests also
catch the report drifting away from the contract other tools rely on.
"""

from __future__ import annotations

import base64
import html
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
from xfer.errors import XferInputError
from xfer.evaluate.contract import (
    BASELINES,
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    RESULTS_COLUMNS,
    RULE_OF_THUMB,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.evaluate.tables import StaleTableError
from xfer.report import render_report, write_report
from xfer.report.fmt import below_baseline, fmt_fraction
from xfer.report.sections.curves import curve_figure
from xfer.report.sections.header import target_type
from xfer.report.sections.sizing import against_rule

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
BELOW_BASELINE_CELL = ("spx,ndx->gold", "direct", "head_only", 0.5)
"""The one cell that is positive against scratch but does not beat its best baseline."""
BELOW_BASELINE_DELTA = 0.0456
INCONCLUSIVE_HALF_WIDTH = 0.0234
METRIC = "r2_oos"
VOL_BASELINES = BASELINES["volatility"]
BADGE = '<span class="badge below-baseline">'
OLD_VERDICT_COLUMNS = ("pair", "source", "target", "chain", "strategy", "fraction", "dann_weight",
                       "metric", "test_score", "scratch_score", "delta", "delta_ci_low",
                       "delta_ci_high", "verdict", "n_pairs")
"""verdicts.parquet as written before day-level verdicts."""


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
                    "seed": seed, "fold": fold, "metric": METRIC, "val_score": 0.9 - score,
                    "test_score": score, "cell_id": f"c{i}", "trial_number": seed,
                    "lr": 1e-3 if strategy == "scratch" else 1e-4,
                    "weight_decay": 1e-4, "lr_ratio": 1.0 if strategy == "scratch" else 0.1,
                    "epochs": 20, "best_epoch": 12, "best_step": 360, "eval_every": 30,
                    "n_train": int(1000 * fraction),
                    "n_test": 250, "test_start": f"202{fold}-01-02", "test_end": f"202{fold}-12-30",
                    "seconds": 1.5, "test_qlike": 0.3,
                    "test_r2": score, "test_ic": 0.05,
                    f"regime_high_vol_{METRIC}": score - 0.05,
                    f"regime_low_vol_{METRIC}": score + 0.05,
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
        beats, p = True, 0.01
        if strategy == "scratch":
            delta, lo, hi, verdict, p = 0.0, 0.0, 0.0, "baseline", math.nan
        elif (pair, chain, strategy, fraction) == NEGATIVE_CELL:
            delta, lo, hi, verdict, beats = NEGATIVE_DELTA, -0.05, -0.01, "negative", False
        elif (pair, chain, strategy, fraction) == BELOW_BASELINE_CELL:
            delta, lo, hi, verdict, beats = BELOW_BASELINE_DELTA, 0.02, 0.07, "positive", False
        elif i % 2:
            delta, lo, hi, verdict = 0.0101 * i, 0.001, 0.02 * i, "positive"
        else:
            delta, verdict, p = 0.0007 * i, "inconclusive", 0.4
            lo, hi = delta - INCONCLUSIVE_HALF_WIDTH, delta + INCONCLUSIVE_HALF_WIDTH
        base = {"har_rv": 0.25, "ewma": 0.2}
        rows.append({"pair": pair, "source": source, "target": target, "chain": chain,
                     "strategy": strategy, "fraction": fraction, "dann_weight": 0.0,
                     "metric": METRIC, "test_score": 0.3 + delta, "scratch_score": 0.3,
                     "delta": delta, "delta_ci_low": lo, "delta_ci_high": hi, "p_value": p / 4,
                     "p_adjusted": p, "adjustment": "holm", "n_comparisons": 0,
                     "verdict": verdict,
                     "detectable_effect": math.nan if strategy == "scratch" else (hi - lo) / 2,
                     "n_days": 480, "n_seeds": 2, "block_length": 6.5 if i % 3 else 9.0,
                     "best_baseline": "har_rv", "best_baseline_score": base["har_rv"],
                     "delta_vs_baseline": 0.01 if beats else -0.002,
                     "delta_vs_baseline_ci_low": 0.004 if beats else -0.01,
                     "delta_vs_baseline_ci_high": 0.02, "beats_baseline": beats,
                     **{f"baseline_{n}_score": base[n] for n in VOL_BASELINES}})
    frame = pd.DataFrame(rows)
    frame["n_comparisons"] = int((frame["strategy"] != "scratch").sum())
    assert list(frame.columns[:len(VERDICT_COLUMNS)]) == list(VERDICT_COLUMNS)
    return frame


def _n_comparisons() -> int:
    return int(_verdicts()["n_comparisons"].iloc[0])


def _curves() -> pd.DataFrame:
    """Every model cell's curve, plus the baselines' (chain direct, DANN off) per pair."""
    rows = [{"pair": pair, "source": source, "target": target, "chain": chain,
             "strategy": strategy, "dann_weight": 0.0, "fraction": fraction, "metric": METRIC,
             "mean": 0.1 + 0.2 * fraction + LIFT[strategy],
             "ci_low": 0.07 + 0.2 * fraction + LIFT[strategy],
             "ci_high": 0.13 + 0.2 * fraction + LIFT[strategy], "n": 480}
            for pair, source, target, chain, strategy, fraction in _cells()]
    rows += [{"pair": pair, "source": source, "target": target, "chain": "direct",
              "strategy": name, "dann_weight": 0.0, "fraction": fraction, "metric": METRIC,
              "mean": 0.2 + 0.01 * k, "ci_low": 0.15, "ci_high": 0.25, "n": 480}
             for pair, (source, target) in PAIRS.items() for k, name in enumerate(VOL_BASELINES)
             for fraction in FRACTIONS]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _sizing() -> pd.DataFrame:
    rows = []
    for pair, source, target, chain, strategy, fraction in _cells():
        if fraction != 1.0:
            continue
        inf = (pair, chain, strategy) == INF_CELL
        req = math.inf if inf else {"scratch": 1.0, "head_only": 0.1, "full": 0.5}[strategy]
        rows.append({"pair": pair, "source": source, "target": target, "chain": chain,
                     "strategy": strategy, "dann_weight": 0.0, "metric": METRIC,
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
                         "metric": METRIC, "delta": 0.0123, "delta_ci_low": 0.002,
                         "delta_ci_high": 0.03, "p_value": 0.002, "p_adjusted": 0.012,
                         "verdict": "positive", "detectable_effect": 0.014, "n_days": 480})
        rows.append({"pair": pair, "kind": "dann_vs_none", "variant": EVIL, "baseline": "none",
                     "strategy": "full", "fraction": 1.0, "metric": METRIC, "delta": -0.0044,
                     "delta_ci_low": -0.01, "delta_ci_high": 0.003, "p_value": 0.2,
                     "p_adjusted": 0.6, "verdict": "inconclusive", "detectable_effect": 0.0065,
                     "n_days": 480})
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


@pytest.mark.slow
def test_written_atomically_to_default_path(study: Path, page: str) -> None:
    path = study / "report.html"
    assert path.is_file() and path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    leftovers = [p.name for p in study.iterdir() if p.name.endswith(".tmp") or
                 p.name.startswith(".report")]
    assert leftovers == []


@pytest.mark.slow
def test_explicit_out_path(study: Path, tmp_path: Path) -> None:
    out = write_report(study, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]


@pytest.mark.slow
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
    assert facts["Metric"].startswith(f"{METRIC} (higher is better)")
    assert facts["Target type"] == "volatility"


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


@pytest.mark.slow
def test_figures_dir_holds_the_pages_images_byte_for_byte(study: Path, page: str, tmp_path: Path) -> None:
    figs = tmp_path / "figs"
    write_report(study, tmp_path / "r.html", figures=figs)
    alts = re.findall(r'<img alt="([^"]*)"', page)
    payloads = [base64.b64decode(p) for p in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    names = report_html.figure_names([html.unescape(a) for a in alts])
    assert sorted(p.name for p in figs.iterdir()) == sorted(names) and len(set(names)) == len(alts)
    for name, payload in zip(names, payloads, strict=True):
        assert (figs / name).read_bytes() == payload  # the same image the page embeds


def test_figure_names_are_slugs_and_unique() -> None:
    assert report_html.figure_names(["Curve: WTI r2_oos", "curve wti r2 oos", "", "!!"]) == [
        "curve-wti-r2-oos.png", "curve-wti-r2-oos-2.png", "figure.png", "figure-2.png"]


@pytest.mark.slow
def test_render_failure_writes_no_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_study(tmp_path / "s")

    def boom(_study: object) -> str:
        raise RuntimeError("section failed")

    monkeypatch.setattr(report_html, "_importance", boom)
    with pytest.raises(RuntimeError, match="section failed"):
        write_report(root, figures=tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


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
    assert against_rule(required, low, high, rule) == reading


@pytest.mark.parametrize(("fractions", "scale"), [((0.1, 0.5, 1.0), "linear"),
                                                  ((0.05, 0.5, 1.0), "log")])
def test_sizing_axis_is_log_when_fractions_span_over_10x(fractions: tuple[float, ...],
                                                         scale: str) -> None:
    curve = pd.DataFrame({"strategy": "full", "fraction": fractions, "mean": 0.1,
                          "ci_low": 0.0, "ci_high": 0.2})
    fig = curve_figure(curve, curve.assign(strategy="scratch"), "p | direct", METRIC)
    assert fig.axes[0].get_xscale() == scale


# --------------------------------------------------------------------------- day-level verdicts


def _row_of(rows: list[str], pair: str, chain: str, strategy: str, fraction: float) -> str:
    esc = {k: v.replace(">", "&gt;") for k, v in (("pair", pair), ("chain", chain))}
    found = [r for r in rows if f"<td>{esc['pair']}</td><td>{esc['chain']}</td><td>{strategy}</td>"
             f"<td>{fmt_fraction(fraction)}</td>" in r]
    assert len(found) == 1, found
    return found[0]


def test_headline_states_estimand_adjustment_and_new_columns(page: str) -> None:
    headline = section(page, "headline")
    header, *rows = table_rows(headline)
    for name in (f"test {METRIC}", f"scratch {METRIC}", f"best baseline ({METRIC})",
                 "delta vs scratch", "95% CI (unadjusted)", "p (adjusted)", "detectable effect",
                 "verdict", "vs best baseline [95% CI]", "days × seeds"):
        assert f"<th>{name}</th>" in header, name
    assert "n pairs" not in page and "n_pairs" not in page
    sentence = re.search(r'<p class="note">(delta is the expected per-day.*?)</p>', headline, re.S)
    assert sentence, headline[:500]
    text = sentence.group(1)
    assert f"expected per-day {METRIC} difference between the cell and scratch on the target" in text
    assert "equally-weighted-cosine long-run variance of the day differences" in text
    assert f"Holm over {_n_comparisons()} comparisons at 5%" in text
    assert _n_comparisons() == len(_verdicts()) - len(PAIRS) * len(FRACTIONS)  # scratch is not tested
    first = _row_of(rows, *NEGATIVE_CELL)
    assert "<td>har_rv 0.2500</td>" in first and "<td>480 × 2</td>" in first
    assert "<td>0.010</td>" in first  # adjusted p
    assert "<td>-0.0020 [-0.0100, +0.0200]</td>" in first  # vs best baseline


def test_inconclusive_rows_show_the_detectable_effect(page: str) -> None:
    rows = table_rows(section(page, "headline"))
    inconclusive = [r for r in rows if '<td class="v-inconclusive">' in r]
    assert inconclusive
    for r in inconclusive:
        assert f"<td>±{INCONCLUSIVE_HALF_WIDTH:.4f}</td>" in r and "<td>0.400</td>" in r
    scratch = [r for r in rows if '<td class="v-baseline">' in r]
    assert scratch and all("<td>—</td>" in r for r in scratch)  # no p, no detectable effect


def test_below_baseline_mark_on_that_row_only(page: str) -> None:
    rows = table_rows(section(page, "headline"))
    marked = [r for r in rows if BADGE in r]
    assert marked == [_row_of(rows, *BELOW_BASELINE_CELL)]
    assert f"{BELOW_BASELINE_DELTA:+.4f}" in marked[0]
    assert '<td class="v-positive below-baseline">positive ' in marked[0]
    # the negative cell also fails to beat its baseline, but it is not positive: no mark
    assert BADGE not in _row_of(rows, *NEGATIVE_CELL)
    matrix = section(page, "matrix")
    assert matrix.count(BADGE) == 1
    group = matrix.split("<h3>spx,ndx-&gt;gold | direct</h3>")[1].split("<h3>")[0]
    assert f"positive {BELOW_BASELINE_DELTA:+.4f} {BADGE}" in group
    assert page.count(BADGE) == 2  # the headline row and its matrix cell


@pytest.mark.parametrize(("verdict", "best", "beats", "marked"), [
    ("positive", "har_rv", False, True),
    ("positive", "har_rv", True, False),
    ("positive", "", False, False),          # no baseline fitted: no false alarm
    ("positive", None, False, False),
    ("positive", "ridge", None, False),      # unknown is not "below"
    ("inconclusive", "zero", False, False),
    ("negative", "ewma", False, False),
    ("baseline", "ewma", False, False),
])
def test_below_baseline_rule(verdict: str, best: str | None, beats: bool | None,
                             marked: bool) -> None:
    rec = {"verdict": verdict, "best_baseline": best, "beats_baseline": beats}
    assert below_baseline(rec) is marked


def test_comparisons_show_adjusted_p_detectable_effect_and_days(page: str) -> None:
    comparisons = section(page, "comparisons")
    assert f"Holm over {len(_comparisons())} comparisons (this table)" in comparisons
    header = table_rows(comparisons)[0]
    for name in ("p (adjusted)", "detectable effect", "n days"):
        assert f"<th>{name}</th>" in header
    rows = [r for r in table_rows(comparisons) if "+0.0123" in r]
    assert rows and all("<td>0.012</td><td>±0.0140</td>" in r and "<td>480</td>" in r
                        for r in rows)


def test_curves_draw_baselines_as_reference_lines_not_strategies(page: str) -> None:
    curves = section(page, "curves")
    figures = _curves().query("strategy not in @VOL_BASELINES")[["pair", "chain"]].drop_duplicates()
    assert curves.count("<img ") == len(figures)  # no figure of its own for a baseline
    assert "har_rv" not in curves.split("<h3>", 1)[1]  # nor a heading
    curve = _curves()
    g = curve[(curve["pair"] == "us_stocks->wti") & (curve["chain"] == "a>b")]
    base = curve[(curve["pair"] == "us_stocks->wti") & curve["strategy"].isin(VOL_BASELINES)]
    ref = curve[(curve["pair"] == "us_stocks->wti") & (curve["strategy"] == "scratch")]
    fig = curve_figure(g, ref, "us_stocks->wti | a>b", METRIC, base)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for name in VOL_BASELINES:
        line = lines[f"{name} (baseline)"]
        assert line.get_linestyle() == "--"
        assert list(line.get_xdata()) == list(FRACTIONS)
    assert {"scratch", "head_only", "full"} <= set(lines)


@pytest.mark.slow
def test_hyperparameters_show_best_step_and_best_epoch_only_if_present(
        page: str, tmp_path: Path) -> None:
    header = table_rows(section(page, "hyperparameters"))[0]
    assert "<th>mean best step</th>" in header and "<th>eval every (steps)</th>" in header
    assert "<th>mean best epoch</th>" in header
    assert "<td>360</td><td>30</td><td>12</td>" in section(page, "hyperparameters")
    root = make_study(tmp_path / "s")
    _results().drop(columns=["best_epoch"]).to_parquet(root / "results.parquet")
    hyper = section(render_report(root), "hyperparameters")
    assert "best epoch" not in hyper and "<td>360</td><td>30</td></tr>" in hyper


@pytest.mark.parametrize(("metric", "target"), [("r2_oos", "volatility"), ("skill", "return"),
                                                ("r2", "volatility"), ("ic", "return"),
                                                ("mse", "unknown")])
def test_target_type_from_the_metric(metric: str, target: str) -> None:
    results = pd.DataFrame({"metric": [metric]})
    study = report_html.Study(Path("."), "s", {}, results)
    assert target_type(study) == target


def _make_old_study(root: Path) -> Path:
    """A study directory written before day-level verdicts: n_pairs, no p-values, no baselines."""
    make_study(root)
    old = _verdicts().assign(metric="r2", n_pairs=4)[list(OLD_VERDICT_COLUMNS)]
    old.to_parquet(root / "verdicts.parquet")
    return root


def test_old_verdicts_name_every_missing_column(tmp_path: Path) -> None:
    root = _make_old_study(tmp_path / "old")
    with pytest.raises(StaleTableError) as info:
        write_report(root)
    message = str(info.value)
    assert isinstance(info.value, XferInputError) and isinstance(info.value, ValueError)
    assert message.startswith(f"{root / 'verdicts.parquet'}: columns: ")
    missing = [c for c in VERDICT_COLUMNS if c not in OLD_VERDICT_COLUMNS]
    assert "p_adjusted" in missing and "beats_baseline" in missing
    listed = message.split("missing column(s) ", 1)[1].split(" (hint", 1)[0]
    assert listed.split(", ") == missing
    assert "older xfer" in message and "re-run the study" in message
    assert not (root / "report.html").exists()


def test_every_stale_file_is_named_at_once(tmp_path: Path) -> None:
    root = _make_old_study(tmp_path / "old")
    _results().drop(columns=["best_step", "eval_every"]).to_parquet(root / "results.parquet")
    _comparisons().drop(columns=["p_value", "p_adjusted", "detectable_effect", "n_days"]).assign(
        n_pairs=4).to_parquet(root / "comparisons.parquet")
    with pytest.raises(StaleTableError) as info:
        render_report(root)
    message = str(info.value)
    assert message.startswith(f"{root}: columns: ")
    assert "results.parquet missing column(s) best_step, eval_every;" in message
    assert "comparisons.parquet missing column(s) p_value, p_adjusted, detectable_effect, n_days" \
        in message
    assert "verdicts.parquet missing column(s) p_value, p_adjusted," in message


def test_cli_report_on_old_study_exits_2_with_the_message(tmp_path: Path, cli) -> None:
    root = _make_old_study(tmp_path / "old")
    r = cli("report", str(root))
    assert r.code == 2
    assert "verdicts.parquet" in r.err and "p_adjusted" in r.err and "Traceback" not in r.err
    assert not (root / "report.html").exists()


@pytest.mark.slow
def test_pooled_section_shows_the_pooled_table_only_when_there_is_one(tmp_path: Path) -> None:
    from xfer.evaluate.contract import POOLED_COLUMNS

    root = make_study(tmp_path / "pooled_study")
    assert 'id="pooled"' not in render_report(root) and 'href="#pooled"' not in render_report(root)
    row = {"group": "equity", "strategy": "head_only", "fraction": 0.1, "dann_weight": 0.0, "versus": "scratch",
           "metric": "r2_oos", "n_targets": 20, "targets": "a,b", "estimate": 0.0123, "ci_low": -0.004,
           "ci_high": 0.0286, "p_value": 0.14, "p_adjusted": 0.56, "verdict": "inconclusive", "tau2": 0.0004,
           "pi_low": -0.031, "pi_high": 0.0556, "detectable_effect": 0.03, "df": 17.5}
    pd.DataFrame([row], columns=list(POOLED_COLUMNS)).to_parquet(root / "pooled.parquet")
    page = render_report(root)
    body = section(page, "pooled")
    assert 'href="#pooled"' in page and "<h2>Pooled across targets</h2>" in body
    cells = table_rows(body)[1]
    for text in ("equity", "head_only", "scratch", "20", "inconclusive", "0.02"):  # tau = sqrt(0.0004)
        assert text in cells, (text, cells)
