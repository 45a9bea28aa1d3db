"""Rebuild the embedded sample markets (xfer/data/samples/) from the PyPI packages that ship them.

    python scripts/build_samples.py            # pip-downloads skfolio==1.12.2 and arch==8.0.0
    python scripts/build_samples.py --wheels DIR

Neither package becomes a dependency: their wheels are downloaded with --no-deps, their
data files read, and each series written as an xfer market file plus PROVENANCE.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd

from xfer.data.ingest import read_market_file
from xfer.data.store import info_for_frame, write_market_file

OUT = Path(__file__).resolve().parents[1] / "xfer" / "data" / "samples"
SKFOLIO = ("skfolio", "1.12.2", "BSD-3-Clause")
ARCH = ("arch", "8.0.0", "NCSA")

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
             f"{SKFOLIO[0]}=={SKFOLIO[1]}", f"{ARCH[0]}=={ARCH[1]}"],
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
    (OUT / "PROVENANCE.json").write_text(json.dumps(
        {"built": str(date.today()), "script": "scripts/build_samples.py", "markets": provenance},
        indent=2) + "\n")
    print(f"wrote {len(provenance)} markets to {OUT}")


if __name__ == "__main__":
    main()
