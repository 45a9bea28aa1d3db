"""Causal features: the leakage canary, labels with a known answer, masking, the file contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xfer.data import features as F
from xfer.data.features import FAMILIES, build_features, compute_features, compute_target
from xfer.data.store import Store

# Markets covering every input column: OHLCV (index), close-only (commodity), and a
# synthetic market with volume, high/low and spread so every market-structure feature runs.


def _synthetic_full(n: int = 900) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, n) * 0.01
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.r_[100, close[:-1]]
    return pd.DataFrame({
        "date": pd.bdate_range("2005-01-03", periods=n),
        "open": open_,
        "high": np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n))),
        "low": np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n))),
        "close": close,
        "volume": rng.lognormal(12, 0.3, n),
        "spread": rng.lognormal(1.5, 0.2, n),
    })


def _perturb_after(frame: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Scramble every bar after row t (prices and volume), leaving rows <= t untouched."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(frame) - t - 1
    shock = np.exp(rng.normal(0, 0.2, n))
    for col in ("open", "high", "low", "close"):
        if col in out:
            out.loc[t + 1 :, col] = out.loc[t + 1 :, col].to_numpy() * shock
    for col in ("volume", "spread"):
        if col in out:
            out.loc[t + 1 :, col] = out.loc[t + 1 :, col].to_numpy() * rng.uniform(0.1, 10, n)
    return out


def leaked_columns(frame: pd.DataFrame, t: int, seed: int = 0) -> list[str]:
    """The canary: feature columns whose value at some day <= t changes when the future does."""
    base, _ = compute_features(frame)
    pert, _ = compute_features(_perturb_after(frame, t, seed))
    leaked = []
    for c in base.columns:
        if c == "date":
            continue
        a, b = base[c].to_numpy()[: t + 1], pert[c].to_numpy()[: t + 1]
        if not np.array_equal(a, b, equal_nan=True):
            leaked.append(c)
    return leaked


@pytest.fixture(scope="module")
def markets() -> dict[str, pd.DataFrame]:
    st = Store("/nonexistent-user-store")  # embedded samples only
    return {
        "sp500_ohlcv": st.load("sp500_ohlcv").frame.iloc[:1200].reset_index(drop=True),
        "wti": st.load("wti").frame.iloc[:1200].reset_index(drop=True),
        "synthetic": _synthetic_full(),
        # the wider universe: a bond ETF (rates), gold, an index with OHLC and no volume, an EM stock, an FX rate
        **{m: st.load(m).frame.iloc[:1200].reset_index(drop=True) for m in ("tlt", "gold", "n225", "samsung", "eurusd")},
    }


@pytest.mark.parametrize("market", ["sp500_ohlcv", "wti", "synthetic", "tlt", "gold", "n225", "samsung", "eurusd"])
def test_leakage_canary_no_feature_sees_the_future(markets, market: str) -> None:
    frame = markets[market]
    feats, _ = compute_features(frame)
    assert len(feats.columns) > 10
    for k, t in enumerate((F.WARMUP + 3, F.WARMUP + 100, len(frame) - 40, len(frame) - 2)):
        assert leaked_columns(frame, t, seed=k) == [], (market, t)


def test_leakage_canary_catches_a_look_ahead_feature(markets, monkeypatch) -> None:
    """The canary must be able to fail: register a feature that peeks one day ahead."""
    peek = F.Feature("momentum", "peek_1", ("close",), lambda f, r: r.shift(-1), 2)
    monkeypatch.setattr(F, "FEATURES", (*F.FEATURES, peek))
    assert leaked_columns(markets["synthetic"], F.WARMUP + 50) == ["momentum.peek_1"]


def test_every_family_present_and_market_structure_masked_without_columns(markets) -> None:
    full = build_features(markets["synthetic"])
    assert set(full.families) == set(FAMILIES)
    assert full.masked == {}
    wti = build_features(markets["wti"])
    assert "market_structure" not in wti.families
    assert wti.masked["market_structure.volume_z_20"] == "needs volume"
    assert wti.masked["market_structure.hl_range"] == "needs high, low"
    # nothing fabricated: no masked name appears as a column
    assert not set(wti.masked) & set(wti.data.columns)
    ohlcv = build_features(markets["sp500_ohlcv"])
    assert "market_structure.volume_z_20" in ohlcv.feature_names
    assert set(ohlcv.masked) == {"market_structure.spread_20"}


def test_targets_known_answer() -> None:
    close = np.array([100.0, 101.0, 99.0, 99.0, 102.0, 103.0, 101.0])
    frame = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=7), "close": close})
    r = np.diff(np.log(close))
    ret = compute_target(frame, "return", 2).to_numpy()
    np.testing.assert_allclose(ret[:5], np.log(close[2:] / close[:-2]))
    assert np.isnan(ret[5:]).all()
    vol = compute_target(frame, "volatility", 3).to_numpy()
    # label of day t: log annualised RV of returns t+1..t+3 = r[t], r[t+1], r[t+2]
    expect = [0.5 * np.log(252 * (np.mean(r[t : t + 3] ** 2) + 1e-8)) for t in range(4)]
    np.testing.assert_allclose(vol[:4], expect)
    assert np.isnan(vol[4:]).all()


def test_label_depends_on_the_future_only(markets) -> None:
    """The label at t must change when bars after t change, and not when bars <= t-h... do."""
    frame = markets["synthetic"]
    t = 500
    y0 = compute_target(frame, "volatility", 5).to_numpy()
    y1 = compute_target(_perturb_after(frame, t, 1), "volatility", 5).to_numpy()
    assert np.array_equal(y0[: t - 5 + 1], y1[: t - 5 + 1])  # label windows end at <= t
    assert not np.isclose(y0[t], y1[t])  # the label of day t is t+1..t+5: it moved


def test_build_features_rows_are_complete_and_ordered(markets) -> None:
    fm = build_features(markets["sp500_ohlcv"], target="return")
    assert fm.horizon == 1 and fm.target == "return"
    assert not fm.data.isna().any().any()
    assert fm.data["date"].is_monotonic_increasing
    assert fm.x().shape == (len(fm.data), len(fm.feature_names))


def test_unknown_family_and_target_list_valid_names(markets) -> None:
    with pytest.raises(ValueError, match="valid: \\['mean_reversion'"):
        compute_features(markets["wti"], families=["magic"])
    with pytest.raises(ValueError, match="valid: \\['volatility', 'return'\\]"):
        compute_target(markets["wti"], "sharpe", 1)  # type: ignore[arg-type]


def test_features_file_contract(tmp_path: Path, store_dir: Path, cli) -> None:
    out = tmp_path / "f.parquet"
    r = cli("data", "features", "sp500_ohlcv", "--out", str(out), "--target", "return", "--horizon", "3")
    assert r.code == 0, r.err
    df = pd.read_parquet(out)  # plain pandas, no xfer
    assert df.columns[0] == "date" and df.columns[-1] == "target"
    feats = df.columns[1:-1]
    assert all(c.split(".", 1)[0] in FAMILIES and "." in c for c in feats)
    assert "volatility.rv_20" in feats and "market_structure.volume_z_20" in feats
    # the file is raw (unnormalised): a log-vol column keeps its level
    assert df["volatility.rv_20"].mean() < -1.0
    close = Store(store_dir).load("sp500_ohlcv").frame.set_index("date")["close"]
    d = df["date"].iloc[100]
    i = close.index.get_loc(d)
    assert df["target"].iloc[100] == pytest.approx(np.log(close.iloc[i + 3] / close.iloc[i]))
    assert "masked 1" in r.err and "spread" in r.err


def test_features_refuses_bad_args_without_output(tmp_path: Path, store_dir: Path, cli) -> None:
    out = tmp_path / "f.parquet"
    r = cli("data", "features", "sp500_ohlcv", "--out", str(out), "--target", "sharpe")
    assert r.code == 2 and "--target" in r.err and "'sharpe'" in r.err
    r = cli("data", "features", "nope", "--out", str(out))
    assert r.code == 2 and "'nope'" in r.err
    assert not out.exists() and list(tmp_path.glob(".f.parquet*")) == []
