"""The wider market universe (issue 21): every series beyond the first 30 has a provenance entry
that matches its file, enough daily rows, a permissive licence, and loads and featurises with the
network blocked; the build script's refusals are recorded with their reason."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

import xfer.data.store as store_mod
from xfer.data.features import build_features
from xfer.data.store import Store

PROV = json.loads((Path(store_mod.__file__).parent / "samples" / "PROVENANCE.json").read_text())
NEW = {"eem", "fxi", "efa", "ewg", "ewj", "ewq", "ewu", "epp", "vgk", "vpl", "n225", "samsung",
       "tip", "ief", "tlt", "lqd", "bnd", "csj", "gold", "spy", "dia", "xlb", "xle", "xlf", "xlk", "xlu",
       *(f"eur{c}" for c in ("usd", "jpy", "gbp", "chf", "cad", "aud", "sek", "nok", "nzd",
                             "pln", "huf", "czk", "krw", "zar", "mxn", "brl", "inr", "try", "cny"))}
PERMISSIVE = {"MIT", "BSD-3-Clause", "NCSA", "Apache-2.0"}
GROUPS = {"intl_equity": 9, "em_equity": 3, "bonds": 6, "metals": 1, "us_sector": 5, "us_etf": 2,
          "fx": 19, "fx_g10": 9, "fx_em": 10}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or resolve a name fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_the_universe_has_twenty_new_series_in_four_classes_beyond_us_equities(store: Store) -> None:
    infos = {i.id: i for i in store.list()}
    assert set(infos) >= NEW and len(NEW) == 45
    equity = {"equity", "index", "etf"}
    beyond_us_equity = {("intl/em equity" if i.asset_class in equity else i.asset_class) for i in infos.values()
                        if not (i.region == "US" and i.asset_class in equity)}
    assert beyond_us_equity >= {"intl/em equity", "fx", "rates", "commodity"}
    for cls in ("fx", "rates", "commodity"):
        assert sum(i.asset_class == cls and i.n_rows >= 1000 for i in infos.values()) >= 2, cls
    for tag, n in GROUPS.items():
        assert len(store.resolve([f"@{tag}"])) == n, tag


@pytest.mark.parametrize("mid", sorted(NEW))
def test_new_series_provenance_rows_frequency_and_offline_load(mid: str, store: Store, offline: None) -> None:
    info = store.info(mid)
    prov = PROV["markets"][mid]
    assert prov["licence"] in PERMISSIVE and info.licence == prov["licence"]
    assert info.source.startswith(f"{prov['package']}=={prov['version']} {prov['file']}")
    assert (prov["first_date"], prov["last_date"], int(prov["rows"])) == (
        str(info.first_date), str(info.last_date), info.n_rows)
    frame = store.load(mid).frame
    assert len(frame) == info.n_rows >= 1000
    gaps = frame["date"].diff().dt.days.dropna()
    assert info.frequency == "daily" and gaps.median() <= 3
    assert int((gaps > 10).sum()) == len(info.gaps)  # a long closure is recorded, never silent
    assert frame["close"].gt(0).all() and frame["date"].is_monotonic_increasing
    for target in ("volatility", "return"):
        fm = build_features(frame, target)
        assert len(fm.data) > 800 and np.isfinite(fm.data[[*fm.feature_names, "target"]].to_numpy()).all()
        if "volume" not in info.columns:
            assert any(k.startswith("market_structure") for k in fm.masked)


def test_refusals_are_recorded_with_the_importers_reason() -> None:
    refused = PROV["refused"]
    assert set(refused) == {"jkse", "btc"}
    assert all("at least 1000 daily bars" in why for why in refused.values())
    assert "found 662" in refused["btc"] and "found 946" in refused["jkse"]
