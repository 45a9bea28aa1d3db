"""Bad-input rows: data import, synthetic markets, features, pairs and every store read.

Each row's phrases prove the message names where to look (the file's line or row, the
column) and what to change (the flag: ``--decimal``, ``--date-format``, ``--allow-frequency``,
``--drop-missing``, ``--replace`` ...). No row trains anything; the largest input is a few
hundred bars.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tests.bad_inputs import Case

Setup = Callable[[Path], None]


def _bars(n: int = 400, start: str = "2001-01-02", freq: str = "B", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"Date": pd.date_range(start, periods=n, freq=freq), "Close": close.round(4),
                         "Volume": rng.integers(1000, 5000, n)})


def _csv(edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None, name: str = "f.csv", **to_csv) -> Setup:
    """Write ``edit(_bars())`` (values as text) as a CSV file ``name`` in the test directory."""

    def setup(tmp: Path) -> None:
        df = _bars().astype({"Close": str, "Volume": str})
        df = edit(df) if edit is not None else df
        df.to_csv(tmp / name, index=False, **to_csv)

    return setup


def _parquet(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Setup:
    def setup(tmp: Path) -> None:
        edit(_bars().astype({"Volume": "float64"})).to_parquet(tmp / "f.parquet")

    return setup


def _text(text: str | bytes, name: str = "f.csv") -> Setup:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def _market(*ids: str, n: int = 400) -> Setup:
    """Synthetic markets of ``n`` bars in the test's store."""

    def setup(tmp: Path) -> None:
        from xfer.data import synthetic as syn
        from xfer.data.store import Store

        for mid in ids:
            syn.write_market(Store(tmp / "xfer_home"), mid, syn.SynthSpec(), n, 0)

    return setup


def _outside_market(tmp: Path) -> None:
    """A valid market file outside the store, where a path-like id would reach it."""
    from xfer.data import synthetic as syn
    from xfer.data.store import Store

    syn.write_market(Store(tmp / "elsewhere"), "x", syn.SynthSpec(), 400, 0)
    (tmp / "xfer_home" / "markets").mkdir(parents=True)


def _set(row: int, col: str, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, col] = value
        return df

    return edit


def _decimal_comma(df: pd.DataFrame) -> pd.DataFrame:
    df["Close"] = df["Close"].map(lambda v: f"{float(v):.2f}".replace(".", ","))
    return df


def _ambiguous_thousands(df: pd.DataFrame) -> pd.DataFrame:
    df["Close"] = df["Close"].map(lambda v: f"{float(v) * 100:,.0f}")  # "5,006": 5006 or 5.006?
    return df


def _dates(fmt: str, day_max: int = 31) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df[df["Date"].dt.day <= day_max].reset_index(drop=True)
        df["Date"] = df["Date"].dt.strftime(fmt)
        return df

    return edit


def _conflicting_dups(df: pd.DataFrame) -> pd.DataFrame:
    df = pd.concat([df, _bars(200, "2002-07-16").astype({"Close": str, "Volume": str})], ignore_index=True)
    extra = df.iloc[[11, 22]].copy()  # lines 13 and 24, repeated with other prices on lines 602 and 603
    extra["Close"] = "99.5"
    return pd.concat([df, extra], ignore_index=True)


def _gapless_monthly(df: pd.DataFrame) -> pd.DataFrame:
    df["Date"] = pd.date_range("1980-01-31", periods=len(df), freq="ME")
    return df


def _hourly(df: pd.DataFrame) -> pd.DataFrame:
    df["Date"] = pd.date_range("2020-01-01 09:00", periods=len(df), freq="h").strftime("%Y-%m-%d %H:%M")
    return df


def _weekly(df: pd.DataFrame) -> pd.DataFrame:
    df["Date"] = pd.date_range("2001-01-05", periods=len(df), freq="W-FRI")
    return df


def _drop_price(df: pd.DataFrame) -> pd.DataFrame:
    df["Open"] = df.pop("Close")
    df["High"] = df["Open"]
    return df


def _import(file: str, *extra: str, market: str = "newmkt") -> tuple[str, ...]:
    return ("data", "import", f"{{tmp}}/{file}", "--market", market, "--asset-class", "equity", *extra)


def _features(market: str, *extra: str) -> tuple[str, ...]:
    return ("data", "features", market, "--out", "{tmp}/f.parquet", *extra)


SEMI_DECIMAL = "Date;Close\n" + "".join(f"{d:%Y-%m-%d};{100 + i % 7},{i % 10}\n"
                                        for i, d in enumerate(pd.bdate_range("2001-01-02", periods=400)))

CASES: list[Case] = [
    # --- numbers: decimal marks, delimiters, non-finite values
    Case("import-decimal-comma-quoted", _import("f.csv"), ("f.csv", "column 'Close'", "decimal comma", "--decimal ,"),
         setup=_csv(_decimal_comma)),
    Case("import-semicolon-decimal-comma", _import("f.csv"), ("f.csv", "'Close'", "line 2", "--decimal ,"),
         setup=_text(SEMI_DECIMAL)),
    Case("import-comma-thousands-or-decimal", _import("f.csv"),
         ("f.csv", "'Close'", "'5,006'", "--decimal .", "--decimal ,"), setup=_csv(_ambiguous_thousands)),
    Case("import-decimal-flag-invalid", _import("f.csv", "--decimal", ";"), ("f.csv", "--decimal", "'.' or ','"),
         setup=_csv()),
    Case("import-delimiter-flag-invalid", _import("f.csv", "--delimiter", "ab"), ("f.csv", "--delimiter", "'ab'"),
         setup=_csv()),
    Case("import-wrong-delimiter-given", _import("f.csv", "--delimiter", ","),
         ("f.csv", "date column", "--delimiter"), setup=_csv(sep=";")),
    Case("import-inf", _import("f.csv"), ("f.csv", "column 'Close'", "finite numbers", "line 7", "'inf'"),
         setup=_csv(_set(5, "Close", "inf"))),
    Case("import-overflow-1e400", _import("f.csv"), ("f.csv", "column 'Close'", "finite numbers", "'1e400'"),
         setup=_csv(_set(5, "Close", "1e400"))),
    Case("import-minus-infinity-volume", _import("f.csv"), ("f.csv", "column 'Volume'", "finite numbers", "line 12"),
         setup=_csv(_set(10, "Volume", "-Infinity"))),
    Case("import-parquet-inf", _import("f.parquet"), ("f.parquet", "column 'Close'", "finite numbers", "row 8"),
         setup=_parquet(lambda df: df.assign(Close=df["Close"].where(df.index != 7, np.inf)))),
    Case("import-non-numeric", _import("f.csv"), ("f.csv", "column 'Close'", "numbers", "line 5", "'abc'"),
         setup=_csv(_set(3, "Close", "abc"))),
    # --- dates: order, ambiguity, frequency, duplicates
    Case("import-day-month-ambiguous", _import("f.csv"),
         ("f.csv", "column 'Date'", "unambiguous", "--date-format '%d/%m/%Y'", "--date-format '%m/%d/%Y'"),
         setup=_csv(_dates("%d/%m/%Y", day_max=12))),
    Case("import-day-month-ambiguous-dots", _import("f.csv"),
         ("f.csv", "column 'Date'", "%d.%m.%Y", "%m.%d.%Y", "--date-format"),
         setup=_csv(_dates("%d.%m.%Y", day_max=12))),
    Case("import-unparseable-date", _import("f.csv"), ("f.csv", "column 'Date'", "unparseable", "line 9", "2001-13-45",
                                                       "--date-format"),
         setup=_csv(lambda df: _set(7, "Date", "2001-13-45")(df.astype({"Date": str})))),
    Case("import-date-format-mismatch", _import("f.csv", "--date-format", "%d/%m/%Y"),
         ("f.csv", "column 'Date'", "unparseable", "['%d/%m/%Y']"), setup=_csv()),
    Case("import-monthly-bars", _import("f.csv"), ("f.csv", "daily bars", "monthly", "--allow-frequency"),
         setup=_csv(_gapless_monthly)),
    Case("import-weekly-parquet", _import("f.parquet"), ("f.parquet", "daily bars", "weekly", "--allow-frequency"),
         setup=_parquet(_weekly)),
    Case("import-hourly-bars", _import("f.csv", "--date-format", "%Y-%m-%d %H:%M"),
         ("f.csv", "daily bars", "intraday", "hours", "--allow-frequency"), setup=_csv(_hourly)),
    Case("import-conflicting-duplicates-true-lines", _import("f.csv"),
         ("f.csv", "one row per date", "different values", "line 13:", "line 602:", "line 24:", "line 603:"),
         setup=_csv(_conflicting_dups)),
    Case("import-no-date-column", _import("f.csv"), ("f.csv", "date column", "'when'", "--date-column"),
         setup=_csv(lambda df: df.rename(columns={"Date": "when"}))),
    Case("import-date-column-unknown", _import("f.csv", "--date-column", "stamp"), ("f.csv", "--date-column",
                                                                                    "'stamp'"), setup=_csv()),
    # --- prices
    Case("import-no-price-column", _import("f.csv"), ("f.csv", "price column", "--price-column"),
         setup=_csv(_drop_price)),
    Case("import-price-column-unknown", _import("f.csv", "--price-column", "Adj Close"),
         ("f.csv", "--price-column", "'Adj Close'"), setup=_csv()),
    Case("import-non-positive-price", _import("f.csv"), ("f.csv", "strictly positive", "line 32", "'-1.0'"),
         setup=_csv(_set(30, "Close", "-1.0"))),
    Case("import-missing-price", _import("f.csv"), ("f.csv", "missing price", "line 42", "--drop-missing"),
         setup=_csv(_set(40, "Close", ""))),
    Case("import-negative-volume", _import("f.csv"), ("f.csv", "column 'Volume'", "non-negative", "line 22"),
         setup=_csv(_set(20, "Volume", "-5"))),
    Case("import-too-few-rows", _import("f.csv"), ("f.csv", "rows", "at least 379", "found 50", "--min-rows"),
         setup=_csv(lambda df: df.iloc[:50])),
    Case("import-min-rows-zero", _import("f.csv", "--min-rows", "0"), ("f.csv", "--min-rows", ">= 1"),
         setup=_csv()),
    # --- files
    Case("import-missing-file", _import("nope.csv"), ("nope.csv", "existing file", "no such file")),
    Case("import-empty-file", _import("f.csv"), ("f.csv", "readable csv or parquet"), setup=_text("")),
    Case("import-header-only", _import("f.csv"), ("f.csv", "at least one data row"), setup=_text("Date,Close\n")),
    Case("import-corrupt-parquet", _import("f.parquet"), ("f.parquet", "readable csv or parquet"),
         setup=_text(b"PAR1 not really parquet \x00\x01", name="f.parquet")),
    # --- catalog fields and ids
    Case("import-unknown-asset-class", ("data", "import", "{tmp}/f.csv", "--market", "m", "--asset-class", "stonks"),
         ("--asset-class", "'stonks'", "commodity"), setup=_csv()),
    Case("import-bad-liquidity-tier", _import("f.csv", "--liquidity-tier", "huge"),
         ("--liquidity-tier", "'huge'", "medium"), setup=_csv()),
    Case("import-existing-id", _import("f.csv", market="keep"), ("--market", "already exists", "--replace"),
         setup=lambda tmp: (_csv()(tmp), _market("keep")(tmp))),
    Case("import-embedded-id", _import("f.csv", "--replace", market="wti"), ("--market", "embedded", "'wti'"),
         setup=_csv()),
    Case("import-id-with-space", _import("f.csv", market="bad id"), ("market id", "'bad id'"), setup=_csv()),
    Case("import-id-uppercase", _import("f.csv", market="Brent"), ("market id", "'Brent'", "lowercase"), setup=_csv()),
    Case("import-id-dotdot", _import("f.csv", market=".."), ("market id", "'..'"), setup=_csv()),
    Case("import-id-path", _import("f.csv", market="../escape"), ("market id", "'../escape'"), setup=_csv()),
    # --- synthetic markets
    Case("synth-negative-n-target", ("data", "synth", "--market", "s", "--n-target", "-5"),
         ("--n-target", "from 379", "found -5")),
    Case("synth-tiny-n-target", ("data", "synth", "--market", "s", "--n-target", "10"), ("--n-target", "found 10")),
    Case("synth-huge-n-target", ("data", "synth", "--market", "s", "--n-target", "10000000"), ("--n-target", "50000")),
    Case("synth-zero-n-source", ("data", "synth", "--relation", "shared", "--n-source", "0"), ("--n-source", "found 0")),
    Case("synth-negative-seed", ("data", "synth", "--market", "s", "--seed", "-1"), ("--seed", ">= 0", "found -1")),
    Case("synth-unknown-relation", ("data", "synth", "--relation", "friends"), ("--relation", "'friends'", "shared")),
    Case("synth-param-garbage", ("data", "synth", "--market", "s", "--param", "garbage"),
         ("--param", "NAME=VALUE", "'garbage'")),
    Case("synth-param-not-a-number", ("data", "synth", "--market", "s", "--param", "ar=abc"), ("--param ar", "a number")),
    Case("synth-param-unknown-name", ("data", "synth", "--market", "s", "--param", "nope=1"), ("--param", "nope")),
    Case("synth-neither-market-nor-relation", ("data", "synth"), ("--market", "--relation")),
    Case("synth-existing-id", ("data", "synth", "--market", "keep", "--n-target", "400"),
         ("--market", "already exists", "--replace"), setup=_market("keep")),
    Case("synth-set-all-or-nothing", ("data", "synth", "--relation", "bridge", "--market", "b", "--n-source", "400",
                                      "--n-target", "400"), ("'b_tgt'", "already exists", "--replace"),
         setup=_market("b_tgt")),
    Case("synth-bad-id", ("data", "synth", "--market", "Bad Id", "--n-target", "400"), ("market id", "'Bad Id'")),
    # --- features
    Case("features-unknown-market", _features("nope"), ("market", "'nope'", "xfer data list")),
    Case("features-id-escapes-store", _features("../../elsewhere/markets/x"),
         ("market id", "'../../elsewhere/markets/x'"), setup=_outside_market),
    Case("features-absolute-path", _features("{tmp}/elsewhere/markets/x"), ("market id", "elsewhere/markets/x'"),
         setup=_outside_market),
    Case("features-bad-target", _features("wti", "--target", "sharpe"), ("--target", "'sharpe'", "volatility")),
    Case("features-out-not-parquet", ("data", "features", "wti", "--out", "{tmp}/f.csv"), ("--out", ".parquet")),
    Case("features-horizon-zero", _features("wti", "--horizon", "0"), ("--horizon", "from 1 to 250", "found 0")),
    Case("features-horizon-huge", _features("wti", "--horizon", "100000"), ("--horizon", "from 1 to 250",
                                                                             "found 100000")),
    Case("features-horizon-leaves-no-rows", _features("short", "--horizon", "250"),
         ("--horizon", "short", "no row has both features and a label"), setup=_market("short")),
    # --- pairs
    Case("pair-target-is-source", ("data", "pair", "wti", "wti"), ("TARGET", "not among the sources", "'wti'")),
    Case("pair-target-in-source-group", ("data", "pair", "@energy_commodity", "wti"),
         ("TARGET", "not among the sources", "'wti'")),
    Case("pair-group-as-target", ("data", "pair", "sp500", "@energy_commodity"),
         ("TARGET", "one market id", "'@energy_commodity'")),
    Case("pair-unknown-group", ("data", "pair", "@nope", "wti"), ("market group", "'@nope'", "us_large_cap")),
    Case("pair-unknown-source", ("data", "pair", "nope", "wti"), ("market", "'nope'")),
    Case("pair-source-escapes-store", ("data", "pair", "../../elsewhere/markets/x", "wti"),
         ("market id", "'../../elsewhere/markets/x'"), setup=_outside_market),
    Case("transfer-source-escapes-store", ("transfer", "--source", "../markets/x", "--target", "wti"),
         ("--source", "'../markets/x'"), setup=_outside_market),
    Case("pair-bad-target-type", ("data", "pair", "sp500", "wti", "--target-type", "sharpe"),
         ("--target-type", "'sharpe'")),
    Case("pair-horizon-too-long-for-splits", ("data", "pair", "wti", "short", "--horizon", "60"),
         ("--horizon", "model-ready target rows", "short"), setup=_market("short")),
]
