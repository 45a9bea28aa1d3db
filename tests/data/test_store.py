"""The store: embedded samples, atomic writes, plain-Parquet files, groups and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from xfer.data import store as store_mod
from xfer.data.store import MarketInfo, Store, info_for_frame
from xfer.errors import XferInputError


def _frame(n: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.bdate_range("2010-01-01", periods=n),
                         "close": [100.0 + i for i in range(n)]})


def test_embedded_catalog(store: Store) -> None:
    infos = {i.id: i for i in store.list()}
    assert len(infos) == 75
    assert all(i.embedded for i in infos.values())
    wti = infos["wti"]
    assert wti.asset_class == "commodity" and wti.columns == ("close",)
    assert str(wti.first_date) == "1986-01-02" and str(wti.last_date) == "2019-01-03"
    assert infos["sp500_ohlcv"].columns == ("open", "high", "low", "close", "volume")
    assert {i.asset_class for i in infos.values()} >= {"equity", "index", "commodity", "etf", "volatility"}
    assert len([i for i in infos.values() if "us_large_cap" in i.tags]) == 20
    prov = json.loads((Path(store_mod.__file__).parent / "samples" / "PROVENANCE.json").read_text())
    assert set(prov["markets"]) == set(infos)
    assert prov["markets"]["wti"]["package"] == "arch" and prov["markets"]["wti"]["licence"] == "NCSA"


def test_files_are_plain_parquet(store: Store) -> None:
    info = info_for_frame(_frame(), id="plain", name="p", asset_class="fx")
    path = store.add(_frame(), info)
    df = pd.read_parquet(path)  # no xfer needed to read data
    assert list(df.columns) == ["date", "close"]
    assert store.info("plain") == info
    expect = _frame().astype({"date": "datetime64[ns]"})
    pd.testing.assert_frame_equal(store.load("plain").frame, expect)


def test_write_is_atomic(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    info = info_for_frame(_frame(), id="half", name="h", asset_class="fx")
    with pytest.raises(OSError, match="disk full"):
        store.add(_frame(), info)
    assert list(store.markets_dir.iterdir()) == []  # no market, no temp file


def test_resolve_groups_and_unknown_names(store: Store) -> None:
    assert store.resolve(["@energy"]) == ["cvx", "rrc", "xom"]
    assert store.resolve(["wti", "@energy", "cvx"]) == ["wti", "cvx", "rrc", "xom"]
    with pytest.raises(XferInputError, match="did you mean wti"):
        store.resolve(["wtl"])
    with pytest.raises(XferInputError, match="tag in"):
        store.resolve(["@nope"])


def test_market_info_rejects_unknown_asset_class() -> None:
    with pytest.raises(ValueError, match="asset_class"):
        MarketInfo(id="x", name="x", asset_class="stonks", first_date="2020-01-01",  # type: ignore[arg-type]
                   last_date="2020-01-02", n_rows=2, columns=("close",))


def test_cli_lists_catalog_offline_in_a_subprocess(store_dir: Path) -> None:
    """The real entry point, as a user runs it right after install."""
    res = subprocess.run([sys.executable, "-m", "xfer.cli", "data", "list", "--json"],
                         capture_output=True, text=True, check=True)
    rows = json.loads(res.stdout)
    assert len(rows) == 75
    assert {"id", "asset_class", "first_date", "last_date", "columns"} <= set(rows[0])
