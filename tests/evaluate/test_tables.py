"""The one aggregation on hand-built test days whose answers are known by construction."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xfer.evaluate import tables as T
from xfer.evaluate.contract import (
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    PREDICTION_COLUMNS,
    SIZING_COLUMNS,
    VERDICT_COLUMNS,
)
from xfer.evaluate.scores import day_scores, fold_scale

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

N_DAYS = 300


def _days(strategy: str, fraction: float, scores: np.ndarray, *, seed: int = 0, chain: str = "direct",
          dann: float = 0.0) -> pd.DataFrame:
    rows = np.arange(1000, 1000 + len(scores))
    return pd.DataFrame({
        "pair": "s->t", "source": "s", "target": "t", "chain": chain, "strategy": strategy, "fraction": fraction,
        "dann_weight": dann, "seed": seed, "fold": rows // 100, "row": rows, "date": pd.Timestamp("2020-01-01"),
        "horizon": 5, "y": 0.0, "pred": 0.0, "score": scores})


def _frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)]


@pytest.fixture()
def days() -> pd.DataFrame:
    """Scratch = noise; head_only = scratch + 0.5 exactly (seed by seed); full = scratch exactly;
    the ridge baseline scores 0.25 above scratch's seed mean, the zero baseline 0."""
    rng = np.random.default_rng(0)
    parts = []
    scratch = {s: rng.normal(0.0, 1.0, N_DAYS) for s in range(3)}
    for s, x in scratch.items():
        parts += [_days("scratch", 0.2, x, seed=s), _days("head_only", 0.2, x + 0.5, seed=s),
                  _days("full", 0.2, x, seed=s)]
    mean = np.mean(list(scratch.values()), axis=0)
    parts += [_days("ridge", 0.2, mean + 0.25), _days("zero", 0.2, np.zeros(N_DAYS))]
    return _frame(parts)


def test_verdicts_known_answers(days: pd.DataFrame) -> None:
    results = pd.DataFrame({"metric": ["skill"]})
    table = T.verdicts(results, days)
    assert list(table.columns[: len(VERDICT_COLUMNS)]) == list(VERDICT_COLUMNS)
    v = table.set_index("strategy")
    head, full = v.loc["head_only"], v.loc["full"]
    # a constant paired difference: the estimate is that constant, the interval has no width
    assert head["delta"] == pytest.approx(0.5) and head["delta_ci_low"] == pytest.approx(0.5)
    assert head["verdict"] == "positive" and head["p_adjusted"] <= 2 * head["p_value"]
    assert full["delta"] == 0.0 and full["verdict"] == "inconclusive" and full["p_adjusted"] == 1.0
    # Holm over the two transfer cells; scratch is the reference, not a comparison
    assert (v.loc[["head_only", "full"], "n_comparisons"] == 2).all() and v.loc["scratch", "verdict"] == "baseline"
    assert math.isnan(v.loc["scratch", "p_adjusted"])
    # baselines: ridge is the best (scratch mean + 0.25); head_only beats it by exactly 0.25, full does not
    assert (v["best_baseline"] == "ridge").all()
    assert v.loc["scratch", "baseline_ridge_score"] == pytest.approx(v.loc["scratch", "test_score"] + 0.25)
    assert v.loc["scratch", "baseline_zero_score"] == 0.0
    assert head["delta_vs_baseline"] == pytest.approx(0.25) and bool(head["beats_baseline"])
    assert full["delta_vs_baseline"] == pytest.approx(-0.25) and not bool(full["beats_baseline"])
    assert head["n_days"] == N_DAYS and head["n_seeds"] == 3 and head["block_length"] >= 5


def test_curves_sizing_and_comparisons(days: pd.DataFrame) -> None:
    # a second fraction where head_only equals scratch at 1.0, and a chain variant of head_only
    extra = days[days["strategy"].isin(["scratch", "head_only"])].assign(fraction=1.0)
    chained = days[days["strategy"] == "head_only"].assign(chain="mid", score=lambda d: d["score"] + 0.1)
    d = _frame([days, extra.assign(score=np.where(extra["strategy"] == "head_only", extra["score"] - 0.5,
                                                  extra["score"])), chained])
    c = T.curves(d, "skill")
    assert list(c.columns) == list(CURVE_COLUMNS) and {"ridge", "zero"} <= set(c["strategy"])
    row = c[(c["strategy"] == "head_only") & (c["fraction"] == 0.2) & (c["chain"] == "direct")].iloc[0]
    assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["n"] == N_DAYS
    s = T.sizing(d, "skill").set_index(["strategy", "chain"])
    assert set(s.reset_index().columns) == {*SIZING_COLUMNS, *T.MONOTONE_COLUMNS}
    # head_only at 0.2 is 0.5 above scratch at 1.0 (the largest fraction) on every day: reached at 0.2
    assert s.loc[("head_only", "direct"), "required_fraction"] == 0.2
    # the monotone curve agrees, and its band excludes "never" and "later"
    assert tuple(s.loc[("head_only", "direct"), list(T.MONOTONE_COLUMNS)]) == (0.2, 0.2, 0.2)
    # scratch's days at 0.2 were copied to 1.0: it reaches its own full-data level at 0.2 already
    assert s.loc[("scratch", "direct"), "required_fraction"] == 0.2
    cmp = T.comparisons(d, "skill")
    assert list(cmp.columns) == list(COMPARISON_COLUMNS)
    (chain_row,) = cmp[cmp["kind"] == "chain_vs_direct"].to_dict("records")
    assert chain_row["delta"] == pytest.approx(0.1) and chain_row["verdict"] == "positive"


def test_stale_tables_are_refused_with_the_missing_columns() -> None:
    old = pd.DataFrame({"pair": ["a"], "n_pairs": [3]})
    with pytest.raises(T.StaleTableError, match="p_adjusted") as exc:
        T.require_columns(old, VERDICT_COLUMNS, "old/verdicts.parquet")
    assert "old/verdicts.parquet" in str(exc.value) and "n_pairs" not in str(exc.value).split("found")[0]


def test_day_scores_known_answers() -> None:
    y = np.array([1.0, -1.0, 2.0, 0.0])
    assert fold_scale("volatility", y) == pytest.approx(np.var(y))
    # r2_oos: 1 - squared error / training variance
    np.testing.assert_allclose(day_scores("volatility", y, y + 1.0, 2.0), [0.5] * 4)
    # skill: forecast / its validation RMS x return / return scale; the zero forecast scores 0
    np.testing.assert_allclose(day_scores("return", y, 2 * y, 2.0, pred_ref=np.array([2.0, -2.0])),
                               y * y / 2.0)
    np.testing.assert_array_equal(day_scores("return", y, 0 * y, 1.0, pred_ref=np.zeros(3)), np.zeros(4))
    with pytest.raises(ValueError, match="pred_ref"):
        day_scores("return", y, y, 1.0)
    with pytest.raises(ValueError, match="target_type"):
        fold_scale("price", y)


def test_tables_in_two_processes_equal_tables_in_one(days: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large study's curves, sizing and comparisons come from a second process: same numbers."""
    results = pd.DataFrame({"metric": []})
    serial = T.all_tables(results, days)
    monkeypatch.setattr(T, "PARALLEL_DAYS", 0)
    monkeypatch.setattr(T.os, "cpu_count", lambda: 2)
    calls: list[int] = []
    real = T._start_band_child
    monkeypatch.setattr(T, "_start_band_child", lambda *a: calls.append(1) or real(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second process must not have failed
        parallel = T.all_tables(results, days)
    assert calls == [1]  # the second process was used
    for name in ("verdicts", "curves", "sizing", "comparisons"):
        pd.testing.assert_frame_equal(parallel[name], serial[name], check_exact=True)


def test_a_failed_second_process_falls_back_to_this_one(days: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    results = pd.DataFrame({"metric": []})
    serial = T.all_tables(results, days)
    monkeypatch.setattr(T, "PARALLEL_DAYS", 0)
    monkeypatch.setattr(T.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(T.sys, "executable", "/bin/false")  # a child that exits 1 and writes nothing
    with pytest.warns(UserWarning, match="second table process failed"):
        fallback = T.all_tables(results, days)
    pd.testing.assert_frame_equal(fallback["curves"], serial["curves"], check_exact=True)


def test_an_unguarded_script_gets_its_tables_once(days: pd.DataFrame, tmp_path: Path) -> None:
    """A script without ``if __name__ == "__main__"`` that computes large tables: the second
    process must not run the script again (multiprocessing's spawn would re-import it)."""
    days.to_pickle(tmp_path / "days.pkl")
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import pandas as pd
        from xfer.evaluate import tables as T
        T.PARALLEL_DAYS = 0
        T.os.cpu_count = lambda: 2
        print("script ran")
        out = T.all_tables(pd.DataFrame({{"metric": []}}), pd.read_pickle({str(tmp_path / "days.pkl")!r}))
        print("tables", sorted(out))
    """))
    run = subprocess.run([sys.executable, "-W", "error::UserWarning", str(script)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("script ran") == 1
    assert "tables ['comparisons', 'curves', 'pooled', 'predictions', 'results', 'sizing', 'verdicts']" in run.stdout
