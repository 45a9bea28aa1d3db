"""The pooled table (:func:`xfer.evaluate.tables.pooled`) on hand-built test days with planted
per-target effects: the pooled estimate is their mean, groups pool their own targets, a target
with two pairs counts once, and the baselines are pooled beside scratch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xfer.evaluate import tables as T
from xfer.evaluate.contract import POOLED_COLUMNS, PREDICTION_COLUMNS

N = 400
DATES = pd.bdate_range("2015-01-05", periods=N)
EFFECT = {"a": 0.10, "b": 0.20, "c": 0.30, "d": 0.05, "e": 0.15, "f": 0.40}
"""Planted head_only - scratch effect per target (no day noise in the difference)."""


def _part(target: str, strategy: str, scores: np.ndarray, seed: int, source: str = "src") -> pd.DataFrame:
    rows = np.arange(N)
    return pd.DataFrame({
        "pair": f"{source}->{target}", "source": source, "target": target, "chain": "direct",
        "strategy": strategy, "fraction": 0.5, "dann_weight": 0.0, "seed": seed, "fold": rows // 200,
        "row": rows, "date": DATES, "horizon": 5, "y": 0.0, "pred": 0.0, "score": scores})


@pytest.fixture()
def days() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    market = rng.normal(0, 1, N)  # every target's days move together
    parts = []
    for t, eff in EFFECT.items():
        base = market + rng.normal(0, 0.5, N)
        for s in range(2):
            parts += [_part(t, "scratch", base, s), _part(t, "head_only", base + eff, s)]
        parts.append(_part(t, "har_rv", base - 0.1, 0))
    # a second pair for target 'a' (another source, a much larger effect): must not count twice
    for s in range(2):
        parts += [_part("a", "scratch", market, s, source="zzz"), _part("a", "head_only", market + 5.0, s, source="zzz")]
    return pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)]


@pytest.mark.slow
def test_the_pooled_estimate_is_the_mean_of_the_planted_effects(days: pd.DataFrame) -> None:
    table = T.pooled(days, metric="r2_oos")
    assert list(table.columns) == list(POOLED_COLUMNS)
    row = table[(table["group"] == "all") & (table["versus"] == "scratch")].iloc[0]
    assert row["n_targets"] == 6 and row["targets"] == "a,b,c,d,e,f"
    assert row["estimate"] == pytest.approx(np.mean(list(EFFECT.values())), abs=1e-12)
    assert row["tau2"] == pytest.approx(np.var(list(EFFECT.values()), ddof=1), rel=1e-9)  # no day noise
    assert row["ci_low"] < row["estimate"] < row["ci_high"] and row["pi_low"] < row["ci_low"]
    assert row["verdict"] == "positive"


@pytest.mark.slow
def test_groups_pool_their_own_targets_and_baselines_are_pooled_beside_scratch(days: pd.DataFrame) -> None:
    groups = {"a": "equity", "b": "equity", "c": "equity", "d": "fx", "e": "fx", "f": "commodity"}
    table = T.pooled(days, groups)
    eq = table[(table["group"] == "equity") & (table["versus"] == "scratch")].iloc[0]
    assert eq["targets"] == "a,b,c" and eq["estimate"] == pytest.approx(0.2, abs=1e-12)
    assert set(table["group"]) == {"all", "equity"}  # fx (2) and commodity (1) are too small
    har = table[(table["group"] == "all") & (table["versus"] == "har_rv")].iloc[0]
    assert har["estimate"] == pytest.approx(np.mean(list(EFFECT.values())) + 0.1, abs=1e-12)
    assert (table["p_adjusted"] >= table["p_value"]).all()
    for versus, fam in table.groupby("versus"):  # Holm within each question, not over the table
        want = np.minimum(1.0, np.sort(fam["p_value"].to_numpy()) * np.arange(len(fam), 0, -1))
        assert np.allclose(np.sort(fam["p_adjusted"].to_numpy()), np.maximum.accumulate(want)), versus


def test_fewer_than_three_targets_give_an_empty_table(days: pd.DataFrame) -> None:
    few = days[days["target"].isin(["a", "b"])]
    assert T.pooled(few).empty and list(T.pooled(few).columns) == list(POOLED_COLUMNS)


@pytest.mark.slow
def test_scratch_at_full_data_is_a_reference_for_the_sizing_question() -> None:
    """head_only at 10% against scratch at 100%: the planted gap is pooled; scratch at 100% is not
    compared with itself."""
    rng = np.random.default_rng(1)
    parts = []
    for i, t in enumerate("pqrs"):
        base = rng.normal(0, 1, N)
        for frac, shift in ((0.1, -0.2), (1.0, 0.0)):
            p = _part(t, "scratch", base + shift, 0)
            parts.append(p.assign(fraction=frac))
            parts.append(_part(t, "head_only", base + shift + 0.05 * (i + 1), 0).assign(fraction=frac))
    table = T.pooled(pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)])
    full = table[table["versus"] == "scratch_full"].set_index(["strategy", "fraction"])["estimate"]
    assert full[("head_only", 0.1)] == pytest.approx(-0.2 + 0.125, abs=1e-12)
    assert full[("scratch", 0.1)] == pytest.approx(-0.2, abs=1e-12)
    assert ("scratch", 1.0) not in full.index
