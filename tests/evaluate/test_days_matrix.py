"""Days builds its seed-by-day matrix with numpy; these pin it to pandas' pivot_table, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xfer.evaluate import tables as T


def _pivot(g: pd.DataFrame) -> pd.DataFrame:
    """The definition Days replaced (and must still give)."""
    return g.pivot_table(index="seed", columns="row", values="score", aggfunc="mean").sort_index(axis=1)


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Shuffled (seed, row) entries: missing combinations, duplicates, NaN scores, whole seeds and
    rows of NaN, an infinity now and then, NaT dates, and wide-ranging magnitudes (so a sum's
    rounding shows)."""
    seed = rng.choice([3, 7, 11, 40], size=n)
    row = rng.choice(np.arange(500, 560), size=n)
    score = rng.normal(size=n) * 10.0 ** rng.integers(-8, 9, size=n)
    score[rng.random(n) < 0.2] = np.nan
    score[seed == 40] = np.nan  # a seed without a value: dropped
    score[row == 555] = np.nan  # a day without a value: dropped
    if rng.random() < 0.3:
        score[rng.integers(n)] = np.inf
    date = pd.Timestamp("2020-01-01") + pd.to_timedelta(row * 2 + rng.integers(0, 2, size=n), unit="D")
    date = date.where(rng.random(n) > 0.1)
    return pd.DataFrame({"seed": seed, "row": row, "score": score, "horizon": rng.integers(1, 6, size=n),
                         "date": date})


@pytest.mark.parametrize("case", range(40))
def test_days_matches_pivot_table_exactly(case: int) -> None:
    rng = np.random.default_rng(case)
    g = _frame(rng, int(rng.integers(1, 400)))
    d, m = T.Days(g), _pivot(g)
    np.testing.assert_array_equal(d.seeds, m.index.to_numpy())
    np.testing.assert_array_equal(d.rows, m.columns.to_numpy())
    assert d.x.dtype == np.float64 and d.x.shape == m.shape
    # exact: same bits, signed zeros included (pandas' compensated sum starts at +0.0)
    np.testing.assert_array_equal(d.x.view(np.int64), m.to_numpy(np.float64).view(np.int64))
    dates = g.groupby("row")["date"].first().reindex(m.columns).to_numpy()
    np.testing.assert_array_equal(d.dates, dates)
    assert d.dates.dtype == dates.dtype
    assert d.horizon == int(g["horizon"].max())


def test_duplicates_average_as_pandas_does() -> None:
    """Several values for one (seed, row), in an order where a plain sum rounds differently from
    pandas' Kahan-compensated one: the mean is pandas' to the last bit."""
    g = pd.DataFrame({"seed": 0, "row": [5, 6, 5, 5, 6], "score": [1.0, 2.0, 1e-16, 1e-16, 3.0],
                      "horizon": 1, "date": pd.Timestamp("2021-01-04")})
    d = T.Days(g)
    np.testing.assert_array_equal(d.x, _pivot(g).to_numpy())
    assert d.x[0, 0] == (1.0 + 2e-16) / 3 != (1.0 + 1e-16 + 1e-16) / 3  # the compensation keeps the 1e-16s
    assert d.x[0, 1] == 2.5


def test_negative_zero_is_made_positive_as_pandas_does() -> None:
    g = pd.DataFrame({"seed": [0, 0], "row": [1, 2], "score": [-0.0, 2.0], "horizon": 1})
    d = T.Days(g)
    assert not np.signbit(d.x[0, 0]) and len(d.dates) == 0


def test_all_nan_is_an_empty_matrix() -> None:
    g = pd.DataFrame({"seed": [0, 1], "row": [1, 2], "score": [np.nan, np.nan], "horizon": 1})
    d, m = T.Days(g), _pivot(g)
    assert d.x.shape == m.shape == (0, 0) and len(d.seeds) == len(d.rows) == 0
    assert np.isnan(d.mean)


def test_groups_equal_one_days_per_group() -> None:
    """_groups takes each group's columns by position; the same as a Days of the group's frame."""
    rng = np.random.default_rng(0)
    g = _frame(rng, 600).assign(pair=rng.choice(["a", "b"], 600), fraction=rng.choice([0.1, 1.0], 600))
    groups = T._groups(g, ["pair", "fraction"])
    expected = {k: T.Days(gg) for k, gg in g.groupby(["pair", "fraction"], sort=True)}
    assert list(groups) == list(expected)
    for k, d in groups.items():
        np.testing.assert_array_equal(d.x, expected[k].x)
        np.testing.assert_array_equal(d.dates, expected[k].dates)
