"""`xfer data import`: real-world formats are accepted; bad files are refused cleanly.

Every refusal must name the file and the offending column/rows, exit non-zero, and leave
the store byte-for-byte unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import tree_digest
from xfer.data.store import Store


def _bars(n: int = 400, start: str = "2001-01-02", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high = close * np.exp(np.abs(rng.normal(0, 0.005, n)))
    low = close * np.exp(-np.abs(rng.normal(0, 0.005, n)))
    return pd.DataFrame({
        "Date": pd.bdate_range(start, periods=n),
        "Open": close, "High": high, "Low": low, "Close": close,
        "Adj Close": close * 0.9, "Volume": rng.integers(1000, 5000, n), "OpenInt": 7,
    })


def _write_us_csv(df: pd.DataFrame, path: Path) -> Path:
    out = df.copy()
    out["Date"] = out["Date"].map(lambda d: f"{d.month}/{d.day}/{d.year}")
    out.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------- accepted formats


def test_us_dates_ohlcv_extra_columns(tmp_path: Path, store: Store, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "cl.csv")
    r = cli("data", "import", str(f), "--market", "cl", "--asset-class", "commodity", "--min-rows", "100")
    assert r.code == 0, r.err
    m = store.load("cl")
    assert list(m.frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert m.frame["date"].iloc[0] == pd.Timestamp("2001-01-02")
    assert m.info.asset_class == "commodity" and m.info.n_rows == 400
    assert "OpenInt" in r.err and "Adj Close" in r.err  # reported as ignored
    np.testing.assert_allclose(m.frame["close"], _bars()["Close"])


def test_price_column_flag_picks_adj_close(tmp_path: Path, store: Store, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "x.csv")
    r = cli("data", "import", str(f), "--market", "x", "--asset-class", "equity",
            "--price-column", "Adj Close", "--min-rows", "100")
    assert r.code == 0, r.err
    np.testing.assert_allclose(store.load("x").frame["close"], _bars()["Adj Close"])


def test_iso_dates_close_only_fred_with_missing_dropped(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()[["Date", "Close"]].rename(columns={"Date": "observation_date", "Close": "DCOILWTICO"})
    df["DCOILWTICO"] = df["DCOILWTICO"].map(lambda v: f"{v:.4f}")
    df.loc[[10, 50], "DCOILWTICO"] = "."
    df.to_csv(tmp_path / "fred.csv", index=False)
    r = cli("data", "import", str(tmp_path / "fred.csv"), "--market", "fred", "--asset-class",
            "commodity", "--drop-missing", "--min-rows", "100")
    assert r.code == 0, r.err
    m = store.load("fred")
    assert m.info.n_rows == 398 and m.info.columns == ("close",)


def test_parquet_with_date_index_and_unsorted_rows(tmp_path: Path, store: Store, cli) -> None:
    df = _bars().set_index("Date").iloc[::-1]
    df.index.name = None  # unnamed DatetimeIndex, as many pipelines write it
    df.to_parquet(tmp_path / "idx.parquet")
    r = cli("data", "import", str(tmp_path / "idx.parquet"), "--market", "idx",
            "--asset-class", "index", "--min-rows", "100")
    assert r.code == 0, r.err
    frame = store.load("idx").frame
    assert frame["date"].is_monotonic_increasing and len(frame) == 400


def test_identical_duplicate_rows_are_collapsed(tmp_path: Path, store: Store, cli) -> None:
    df = _bars()
    df = pd.concat([df, df.iloc[[5, 6]]])
    df.to_csv(tmp_path / "dup.csv", index=False)
    r = cli("data", "import", str(tmp_path / "dup.csv"), "--market", "dup", "--asset-class",
            "equity", "--min-rows", "100")
    assert r.code == 0, r.err
    assert store.load("dup").info.n_rows == 400


# ----------------------------------------------------------------------- refused inputs


def _bad_dates(p: Path) -> Path:
    df = _bars()
    df["Date"] = df["Date"].astype(str)
    df.loc[7, "Date"] = "2001-13-45"
    df.to_csv(p, index=False)
    return p


def _conflicting_dups(p: Path) -> Path:
    df = _bars()
    extra = df.iloc[[20]].copy()
    extra["Close"] = extra["Close"] * 1.5
    pd.concat([df, extra]).to_csv(p, index=False)
    return p


def _non_positive(p: Path) -> Path:
    df = _bars()
    df.loc[30, "Close"] = -1.0
    df.to_csv(p, index=False)
    return p


def _missing(p: Path) -> Path:
    df = _bars()
    df.loc[40, "Close"] = np.nan
    df.to_csv(p, index=False)
    return p


def _short(p: Path) -> Path:
    _bars(n=50).to_csv(p, index=False)
    return p


def _corrupt_parquet(p: Path) -> Path:
    p = p.with_suffix(".parquet")
    p.write_bytes(b"PAR1 this is not really parquet \x00\x01\x02")
    return p


def _no_date(p: Path) -> Path:
    _bars().rename(columns={"Date": "when"}).to_csv(p, index=False)
    return p


def _ambiguous_price(p: Path) -> Path:
    _bars()[["Date", "Open", "High"]].rename(columns={"Open": "a", "High": "b"}).to_csv(p, index=False)
    return p


BAD_FILES = [
    # (name, maker, extra args, substrings the message must contain)
    ("unparseable date", _bad_dates, [], ["column 'Date'", "2001-13-45", "unparseable"]),
    ("conflicting duplicate", _conflicting_dups, [], ["one row per date", "different values", "2001-01-30"]),
    ("non-positive price", _non_positive, [], ["strictly positive", "'Close'", "-1.0"]),
    ("missing price", _missing, [], ["missing price", "--drop-missing", "line 42"]),
    ("too short", _short, [], ["rows", "at least", "found 50"]),
    ("corrupt file", _corrupt_parquet, [], ["readable CSV or Parquet"]),
    ("no date column", _no_date, [], ["date column", "when"]),
    ("ambiguous price column", _ambiguous_price, [], ["--price-column", "['a', 'b']"]),
]


@pytest.mark.parametrize(("name", "maker", "args", "needles"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_refused_store_unchanged(
    name: str, maker, args: list[str], needles: list[str], tmp_path: Path, store_dir: Path, cli
) -> None:
    f = maker(tmp_path / "bad.csv")
    cli("data", "synth", "--market", "keep", "--n-target", "400")  # a non-empty store to protect
    before = tree_digest(store_dir)
    r = cli("data", "import", str(f), "--market", "newmkt", "--asset-class", "equity", *args)
    assert r.code == 2, (name, r)
    assert str(f) in r.err, r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    assert tree_digest(store_dir) == before
    assert not (store_dir / "markets" / "newmkt.parquet").exists()


def test_unknown_asset_class_lists_valid(tmp_path: Path, store_dir: Path, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "ok.csv")
    r = cli("data", "import", str(f), "--market", "m", "--asset-class", "stonks")
    assert r.code == 2
    assert "--asset-class" in r.err and "'stonks'" in r.err and "commodity" in r.err
    assert tree_digest(store_dir) == {}


def test_existing_id_needs_replace(tmp_path: Path, store: Store, store_dir: Path, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "ok.csv")
    assert cli("data", "import", str(f), "--market", "m", "--asset-class", "equity", "--min-rows", "100").code == 0
    before = tree_digest(store_dir)
    f2 = _write_us_csv(_bars(seed=1), tmp_path / "ok2.csv")
    r = cli("data", "import", str(f2), "--market", "m", "--asset-class", "equity", "--min-rows", "100")
    assert r.code == 2 and "already exists" in r.err and "--replace" in r.err
    assert tree_digest(store_dir) == before
    r = cli("data", "import", str(f2), "--market", "m", "--asset-class", "equity", "--min-rows", "100", "--replace")
    assert r.code == 0, r.err
    np.testing.assert_allclose(store.load("m").frame["close"], _bars(seed=1)["Close"])


def test_embedded_id_is_read_only(tmp_path: Path, store_dir: Path, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "ok.csv")
    r = cli("data", "import", str(f), "--market", "wti", "--asset-class", "commodity", "--replace")
    assert r.code == 2 and "embedded" in r.err and "'wti'" in r.err
    assert tree_digest(store_dir) == {}


def test_bad_market_id(tmp_path: Path, store_dir: Path, cli) -> None:
    f = _write_us_csv(_bars(), tmp_path / "ok.csv")
    r = cli("data", "import", str(f), "--market", "Bad Id!", "--asset-class", "equity")
    assert r.code == 2 and "market id" in r.err and "'Bad Id!'" in r.err
    assert tree_digest(store_dir) == {}


def test_missing_file(tmp_path: Path, store_dir: Path, cli) -> None:
    r = cli("data", "import", str(tmp_path / "nope.csv"), "--market", "m", "--asset-class", "equity")
    assert r.code == 2 and "no such file" in r.err and "nope.csv" in r.err
