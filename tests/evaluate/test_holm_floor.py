"""Holm has no resampling floor: a table of 200 comparisons can still call a planted large effect.

A bootstrap p-value is at least ``1 / (1 + B)``; with B = 2000 the smallest Holm-adjusted p of a
200-comparison table was 200 / 2001 = 0.10, so nothing could ever be called. The verdicts now use
an analytic test (Student t p-values, no floor)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xfer.evaluate import tables as T
from xfer.evaluate.contract import PREDICTION_COLUMNS

pytestmark = pytest.mark.slow  # tiers: `pytest -m "not slow"` is the quick one (README)

N_DAYS = 300


def _part(pair: int, strategy: str, scores: np.ndarray) -> pd.DataFrame:
    rows = np.arange(N_DAYS)
    return pd.DataFrame({
        "pair": f"s->t{pair}", "source": "s", "target": f"t{pair}", "chain": "direct", "strategy": strategy,
        "fraction": 0.5, "dann_weight": 0.0, "seed": 0, "fold": rows // 100, "row": rows,
        "date": pd.bdate_range("2020-01-01", periods=N_DAYS), "horizon": 1, "y": 0.0, "pred": 0.0,
        "score": scores})


def test_a_table_of_200_comparisons_calls_a_planted_large_effect_after_holm() -> None:
    rng = np.random.default_rng(0)
    parts = []
    for pair in range(100):  # 100 pairs x (head_only, full) = 200 comparisons against scratch
        scratch = rng.normal(0.0, 1.0, N_DAYS)
        parts.append(_part(pair, "scratch", scratch))
        for strategy in ("head_only", "full"):
            planted = 1.0 if (pair, strategy) == (0, "head_only") else 0.0  # t about 17: unmissable
            parts.append(_part(pair, strategy, scratch + planted + rng.normal(0.0, 1.0, N_DAYS)))
    days = pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)]
    table = T.verdicts(pd.DataFrame({"metric": ["skill"]}), days)
    tested = table[table["strategy"] != "scratch"]
    assert len(tested) == 200 and int(tested["n_comparisons"].iloc[0]) == 200
    assert T.ALPHA < 200 / (1 + 2000)  # the old bootstrap floor (B = 2000): nothing could be called
    hit = tested[(tested["pair"] == "s->t0") & (tested["strategy"] == "head_only")].iloc[0]
    assert hit["verdict"] == "positive" and hit["p_adjusted"] < T.ALPHA, hit[["p_value", "p_adjusted"]]
    # the nulls stay null: Holm keeps the family-wise error rate
    assert (tested.drop(hit.name)["verdict"] == "inconclusive").mean() >= 0.99
