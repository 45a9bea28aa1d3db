"""Bad-input rows, second round (issue 24): import_checks.

Files that are not what their name says (gzip, ZIP/Excel, JSON, HTML, UTF-16, Latin-1, a FIFO,
a directory), time zones that move every bar a day, column names the importer could confuse,
column types that are no numbers, dates pandas cannot hold, headers too long to read, and
prices no market has (split-sized jumps, constant series, 1e-300): each is refused with the
file, the column or line, and the flag that accepts or chooses. The comment on each row says
what happened before issue 24 ("guard": it was already refused well). See
:mod:`tests.bad_inputs` for the row format; :mod:`tests.data.test_import_checks` has the
accepted counterparts and the message-length checks.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tests.bad_inputs import Case
from tests.bad_inputs.data import SEMI_DECIMAL, _bars, _csv, _import, _parquet, _set, _text

Setup = Callable[[Path], None]
CSV = _bars().to_csv(index=False)


def _frame(edit: Callable[[pd.DataFrame], pd.DataFrame], name: str = "f.parquet") -> Setup:
    """``edit(_bars())`` (native types) written as Parquet, or as CSV when ``name`` ends in .csv."""

    def setup(tmp: Path) -> None:
        df = edit(_bars())
        df.to_csv(tmp / name, index=False) if name.endswith(".csv") else df.to_parquet(tmp / name)

    return setup


def _arrow(columns: dict[str, object], names: list[str] | None = None) -> Setup:
    """A Parquet file written by pyarrow from ``columns`` (arrays), under ``names`` if given."""

    def setup(tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = [pa.array(v() if callable(v) else v) for v in columns.values()]
        pq.write_table(pa.Table.from_arrays(arrays, names=names or list(columns)), tmp / "f.parquet")

    return setup


def _zip(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.getvalue()


def _fifo(tmp: Path) -> None:
    os.mkfifo(tmp / "x.csv")


def _directory(tmp: Path) -> None:
    (tmp / "x.csv").mkdir()
    (tmp / "x.csv" / "part-0.csv").write_text(CSV)


def _symlink_to_secret(tmp: Path) -> None:
    secret = tmp / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (tmp / "f.csv").symlink_to(secret)


def _broken_symlink(tmp: Path) -> None:
    (tmp / "f.csv").symlink_to(tmp / "gone.csv")


def _dates(values: Callable[[pd.Series], pd.Series]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(Date=values(df["Date"]))

    return edit


def _close(values: Callable[[pd.Series], pd.Series]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(Close=values(df["Close"]))

    return edit


def _from_row(row: int, factor: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Every close from ``row`` on times ``factor``: a x100 change of unit, a 2:1 split (0.5)."""

    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[row:, "Close"] = df.loc[row:, "Close"] * factor
        return df

    return edit


def _flat(start: int, n: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[start:start + n - 1, "Close"] = df.loc[start, "Close"]
        return df

    return edit


def _two_symbols(df: pd.DataFrame) -> pd.DataFrame:
    """A long-format export: two tickers on the same dates, (symbol, date) as the index."""
    other = df.assign(Close=df["Close"] * 2)
    both = pd.concat([df.assign(symbol="AAA"), other.assign(symbol="BBB")])
    return both.set_index(["symbol", "Date"])


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


HUGE_HEADER = "Date,Close," + "x" * 3_000_000 + "\n" + "2001-01-02,1,2\n"
LONG_NAME = "Date,Close," + "y" * 300 + "\n" + "".join(f"{d:%Y-%m-%d},{50 + i % 7},1\n" for i, d in
                                                        enumerate(pd.bdate_range("2001-01-02", periods=20)))
WIDE = ",".join(f"c{i}" for i in range(10_000)) + "\n" + "\n".join(",".join(["1"] * 10_000) for _ in range(5)) + "\n"

CASES: list[Case] = [
    # --- 1. time zones: the calendar date of a zoned timestamp depends on the exchange's zone
    # 22:00 New York stored as UTC (03:00 next day): every bar moved a day later, "times of day dropped"
    Case("import-tz-utc-evening-bars", _import("f.parquet"),
         ("f.parquet", "column 'Date'", "in UTC", "2001-01-03 03:00:00+00:00", "--timezone"),
         setup=_parquet(_dates(lambda d: (d + pd.Timedelta(hours=22)).dt.tz_localize("America/New_York")
                               .dt.tz_convert("UTC")))),
    # a zoned date index at 21:00 UTC: its dates were silently taken in UTC
    Case("import-tz-utc-index", _import("f.parquet"), ("f.parquet", "time of day", "--timezone"),
         setup=_parquet(lambda df: df.set_index(df.pop("Date") + pd.Timedelta(hours=21)).tz_localize("UTC"))),
    # '2001-01-02T00:00:00+05:00' was "unparseable", naming neither the offset nor a flag
    Case("import-csv-utc-offset", _import("f.csv"), ("f.csv", "column 'Date'", "utc offset", "'+05:00'", "line 2",
                                                    "--timezone"),
         setup=_frame(_dates(lambda d: d.dt.strftime("%Y-%m-%dT00:00:00+05:00")), "f.csv")),
    # with --timezone, a date without an offset among dates with one was read as UTC
    Case("import-csv-offset-mixed", _import("f.csv", "--timezone", "America/New_York"),
         ("f.csv", "without an offset", "line 7"),
         setup=_frame(lambda df: _set(5, "Date", "2001-01-09")(
             df.assign(Date=df["Date"].dt.strftime("%Y-%m-%dT16:00:00-05:00"))), "f.csv")),
    # new flag: an unknown zone is named
    Case("import-timezone-unknown", _import("f.csv", "--timezone", "Mars/Olympus"),
         ("--timezone", "'Mars/Olympus'", "America/New_York"), setup=_csv()),
    Case("import-timezone-path", _import("f.csv", "--timezone", "../../etc/passwd"),
         ("--timezone", "iana time zone"), setup=_csv()),
    # --- 2. column types that are no numbers
    # a bool close imported as 1.0 on every row
    Case("import-parquet-bool-close", _import("f.parquet"), ("f.parquet", "column 'Close'", "type bool"),
         setup=_parquet(lambda df: df.assign(Close=True))),
    # a datetime 'close' imported as nanoseconds since 1970
    Case("import-parquet-datetime-close", _import("f.parquet"), ("column 'Close'", "type datetime64"),
         setup=_parquet(lambda df: df.assign(Close=df["Date"]))),
    # a duration volume imported as nanoseconds
    Case("import-parquet-timedelta-volume", _import("f.parquet"), ("column 'Volume'", "type timedelta64"),
         setup=_parquet(lambda df: df.assign(Volume=pd.to_timedelta(df["Volume"], unit="s")))),
    # guard: a struct column is refused as non-numeric
    Case("import-parquet-struct-close", _import("f.parquet"), ("column 'Close'", "numbers", "row 1"),
         setup=_arrow({"Date": lambda: _bars()["Date"], "Close": lambda: [{"v": float(v)} for v in _bars()["Close"]]})),
    # guard: a dictionary-encoded (categorical) price column with a bad category names the row
    Case("import-parquet-categorical-garbage", _import("f.parquet"), ("column 'Close'", "numbers", "'abc'"),
         setup=_parquet(lambda df: df.assign(Close=_set(3, "Close", "abc")(df.astype({"Close": str}))["Close"]
                                             .astype("category")))),
    # --- 3. two columns the importer could pick under one name
    # 'Date' and 'date': one was used silently
    Case("import-date-and-Date", _import("f.csv"), ("f.csv", "'Date' and 'date'", "--date-column"),
         setup=_frame(lambda df: df.assign(date=df["Date"] + pd.Timedelta(days=1)), "f.csv")),
    # 'Close' and 'close': one was used silently
    Case("import-close-and-Close", _import("f.csv"), ("f.csv", "'Close' and 'close'", "--price-column"),
         setup=_frame(lambda df: df.assign(close=df["Close"] * 2), "f.csv")),
    # --date-column DATE matched either of them
    Case("import-date-column-flag-ambiguous", _import("f.csv", "--date-column", "DATE"),
         ("'Date' and 'date'", "--date-column 'Date'"),
         setup=_frame(lambda df: df.assign(date=df["Date"] + pd.Timedelta(days=1)), "f.csv")),
    # 'Close,Close': pandas renamed the second 'Close.1' and the first was used silently
    Case("import-repeated-close-name", _import("f.csv"), ("f.csv", "'Close' and 'Close'", "rename or drop"),
         setup=_text("Date,Close,Close\n" + "".join(f"{d:%Y-%m-%d},{50 + i % 3},{60 + i % 5}\n" for i, d in
                                                   enumerate(pd.bdate_range("2001-01-02", periods=400))))),
    # 'Volume' and 'volume': one was used silently
    Case("import-volume-and-VOLUME", _import("f.csv"), ("'Volume' and 'VOLUME'", "rename or drop"),
         setup=_frame(lambda df: df.assign(VOLUME=df["Volume"] * 10), "f.csv")),
    # Parquet with a repeated name: "ArrowInvalid: Multiple matches for FieldRef"
    Case("import-parquet-repeated-name", _import("f.parquet"), ("f.parquet", "'Close' and 'Close'"),
         setup=_arrow({"Date": lambda: _bars()["Date"], "Close": lambda: _bars()["Close"],
                       "Close2": lambda: _bars()["Close"] * 2}, names=["Date", "Close", "Close"])),
    # --- 4. implausible prices
    # a x100 change of unit (cents) accepted without a word
    Case("import-x100-jump", _import("f.csv"),
         ("f.csv", "column 'Close'", "2001-10-09", "line 202", "x99", "under x4", "--allow-implausible"),
         setup=_frame(_from_row(200, 100.0), "f.csv")),
    # an unadjusted 2:1 split (-50% in a day) accepted without a word
    Case("import-unadjusted-split", _import("f.csv"),
         ("2001-10-09", "x0.497", "log move -0.70", "under x1.9", "50 robust daily sigmas", "--allow-implausible"),
         setup=_frame(_from_row(200, 0.5), "f.csv")),
    # a 1:10 reverse split (x10 in a day)
    Case("import-reverse-split-x10", _import("f.parquet"), ("f.parquet", "row 301", "x10", "--allow-implausible"),
         setup=_parquet(_from_row(300, 10.0))),
    # a constant close: zero variance, a constant label
    Case("import-constant-close", _import("f.csv"),
         ("the same close 42.0 on 400 bars", "constant series", "--allow-implausible"),
         setup=_frame(lambda df: df.assign(Close=42.0), "f.csv")),
    # 150 bars of one stale price in the middle
    Case("import-flat-run", _import("f.csv"), ("150 bars in a row", "line 102", "at most 100", "--allow-implausible"),
         setup=_frame(_flat(100, 150), "f.csv")),
    # 1e-300 prices: every return fine, every price absurd
    Case("import-price-1e-300", _import("f.csv"), ("prices from 1e-06 to 1e+09", "2001-01-02", "--allow-implausible"),
         setup=_frame(_close(lambda c: c * 1e-300), "f.csv")),
    # a denormal 5e-324 on one line
    Case("import-price-5e-324", _import("f.csv"), ("5e-324", "2001-01-09 (line 7)", "1e-06"),
         setup=_csv(_set(5, "Close", "5e-324"))),
    Case("import-price-1e300", _import("f.csv"), ("1e+300", "line 7", "--allow-implausible"),
         setup=_csv(_set(5, "Close", "1e300"))),
    # dates after today (2099): accepted
    Case("import-future-dates", _import("f.csv"), ("dates up to today", "2099-01-02", "--allow-implausible"),
         setup=_frame(_dates(lambda d: d + pd.DateOffset(years=98)), "f.csv")),
    # '%m/%d/%y' read 1965 as 2065: accepted
    Case("import-two-digit-years", _import("f.csv"), ("2065-01-04", "%y", "--date-format", "--allow-implausible"),
         setup=_frame(_dates(lambda d: pd.bdate_range("1965-01-04", periods=len(d)).strftime("%m/%d/%y")), "f.csv")),
    # --- 5. dates pandas cannot hold
    # OutOfBoundsDatetime traceback
    Case("import-date-2262", _import("f.csv"),
         ("column 'Date'", "line 7", "'2262-04-12'", "1677-09-22 to 2262-04-11"),
         setup=_csv(lambda df: _set(5, "Date", "2262-04-12")(df.astype({"Date": str})))),
    Case("import-date-1600", _import("f.csv"), ("column 'Date'", "line 7", "'1600-01-03'", "1677-09-22"),
         setup=_csv(lambda df: _set(5, "Date", "1600-01-03")(df.astype({"Date": str})))),
    Case("import-parquet-date32-3000", _import("f.parquet"), ("f.parquet", "row 6", "3000", "2262-04-11"),
         setup=_arrow({"Date": lambda: [d.date() if i != 5 else date(3000, 1, 1) for i, d in enumerate(_bars()["Date"])],
                       "Close": lambda: _bars()["Close"]})),
    # --- 6. headers too long to read
    # a 150 MB header took 1 GB and was echoed whole; here 3 MB (stderr length: test_import_checks)
    Case("import-huge-header", _import("f.csv"), ("f.csv", "header", "64 kib"), setup=_text(HUGE_HEADER)),
    # a 300-character column name was echoed whole
    Case("import-long-column-name", _import("f.csv"), ("f.csv", "column 3 of 300 characters", "at most 256"),
         setup=_text(LONG_NAME)),
    # 10,000 columns and no date column: all 10,000 names were echoed
    Case("import-10000-columns", _import("f.csv"), ("date column", "'c0'", "and 9988 more"), setup=_text(WIDE)),
    # --- 7. not a regular file
    # a FIFO: "no such file" (and it must not be opened: that would block)
    Case("import-fifo", _import("x.csv"), ("x.csv", "a fifo (named pipe)", "not a regular file"), setup=_fifo),
    # a directory named x.csv: "no such file"
    Case("import-directory", _import("x.csv"), ("x.csv", "a directory", "not a regular file"), setup=_directory),
    # a symlink to a missing file: "no such file" without saying why
    Case("import-broken-symlink", _import("f.csv"), ("f.csv", "broken symbolic link"), setup=_broken_symlink),
    # a symlink to a passwd-like file: refused as a table without a date column, its content not echoed
    Case("import-symlink-to-system-file", _import("f.csv"), ("f.csv", "date column", "does not split on commas"),
         setup=_symlink_to_secret),
    # --- 8. what the file really is
    # a gzip'd semicolon file with decimal commas was told to "split on commas"; now read through
    Case("import-gzip-semicolon-decimal-comma", _import("f.csv.gz"), ("f.csv.gz", "'Close'", "line 2", "--decimal ,"),
         setup=_text(_gz(SEMI_DECIMAL), name="f.csv.gz")),
    # the same named .csv: UnicodeDecodeError 0x8b
    Case("import-gzip-named-csv", _import("f.csv"), ("f.csv", "'Close'", "--decimal ,"),
         setup=_text(_gz(SEMI_DECIMAL))),
    # guard: a cut gzip stream
    Case("import-gzip-truncated", _import("f.csv.gz"), ("f.csv.gz", "readable", "eoferror"),
         setup=_text(_gz(CSV * 40)[:5000], name="f.csv.gz")),
    # an .xlsx renamed .csv: UnicodeDecodeError
    Case("import-xlsx-renamed-csv", _import("f.csv"), ("f.csv", "excel workbook", "save the sheet as csv"),
         setup=_text(_zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}))),
    # a zipped CSV: UnicodeDecodeError
    Case("import-zip-archive", _import("f.csv"), ("f.csv", "zip archive", "unzip"), setup=_text(_zip({"f.csv": CSV}))),
    # JSON named .csv: "an empty table"
    Case("import-json-named-csv", _import("f.csv"), ("f.csv", "found json", "read_json"),
         setup=_text(_bars().to_json(orient="records", date_format="iso"))),
    # an HTML error page saved as the data: "an empty table"
    Case("import-html-page", _import("f.csv"), ("f.csv", "html or xml document", "web page"),
         setup=_text("<!DOCTYPE html>\n<html><body>429 Too Many Requests</body></html>\n")),
    Case("import-pdf", _import("f.csv"), ("f.csv", "pdf document"), setup=_text(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")),
    # Latin-1 text: "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xf4"
    Case("import-latin1", _import("f.csv"), ("f.csv", "utf-8", "0xf4", "line 1", "iconv"),
         setup=_text(CSV.replace("Close", "Clôture").encode("latin-1"))),
    # UTF-16 with a BOM: UnicodeDecodeError; now read (and this one's decimal commas named)
    Case("import-utf16-decimal-comma", _import("f.csv"), ("f.csv", "'Close'", "--decimal ,"),
         setup=_text(SEMI_DECIMAL.encode("utf-16"))),
    # UTF-16 without a BOM: UnicodeDecodeError
    Case("import-utf16-no-bom", _import("f.csv"), ("f.csv", "nul byte", "utf-16"),
         setup=_text(CSV.encode("utf-16-le"))),
    # a NUL byte in a date: "unparseable '2001-01-05\x00'"
    Case("import-nul-byte", _import("f.csv"), ("f.csv", "nul byte", "line 5"),
         setup=_text(CSV.encode().replace(b"2001-01-05,", b"2001-01-05\x00,", 1))),
    # a file of blank lines: "an empty table"
    Case("import-whitespace-only", _import("f.csv"), ("f.csv", "only blank lines"), setup=_text("  \n\n \t \n")),
    # two exports concatenated: "unparseable value 'Date'"
    Case("import-repeated-header", _import("f.csv"), ("f.csv", "header repeated", "line 402", "concatenated"),
         setup=_text(CSV + CSV.replace("2001-", "2003-").replace("2002-", "2004-"))),
    # --- values and dates
    # "$12.50": refused as non-numeric with no hint; now the hint names the signs
    Case("import-dollar-signs", _import("f.csv"), ("column 'Close'", "'$50.0629'", "currency"),
         setup=_frame(_close(lambda c: c.map(lambda v: f"${v}")), "f.csv")),
    # "12%": the same, the hint says what to remove
    Case("import-percent-signs", _import("f.csv"), ("column 'Close'", "'50.0629%'", "percent signs"),
         setup=_frame(_close(lambda c: c.map(lambda v: f"{v}%")), "f.csv")),
    # guard: -0.0 is no positive price
    Case("import-negative-zero", _import("f.csv"), ("strictly positive", "'-0.0'", "line 7"),
         setup=_csv(_set(5, "Close", "-0.0"))),
    # Excel serial days: "unparseable" with a --date-format hint that cannot help
    Case("import-excel-serial-dates", _import("f.csv"), ("f.csv", "'36893'", "excel serial"),
         setup=_frame(_dates(lambda d: (d - pd.Timestamp("1899-12-30")).dt.days), "f.csv")),
    # epoch milliseconds in an int64 Parquet column: the same
    Case("import-epoch-ms-parquet", _import("f.parquet"), ("f.parquet", "978393600000", "epoch seconds"),
         setup=_parquet(_dates(lambda d: d.astype("datetime64[ms]").astype("int64")))),
    # guard: NaT in a Parquet date column
    Case("import-parquet-nat-date", _import("f.parquet"), ("f.parquet", "missing date", "row 6"),
         setup=_parquet(lambda df: df.assign(Date=df["Date"].where(df.index != 5)))),
    # guard: an all-NaN price column
    Case("import-parquet-all-nan-close", _import("f.parquet"), ("400 missing price", "--drop-missing"),
         setup=_parquet(lambda df: df.assign(Close=np.nan))),
    # a (symbol, date) index: the date column was lost ("no date column"); now the two tickers clash
    Case("import-parquet-two-symbols", _import("f.parquet"), ("one row per date", "different values"),
         setup=_parquet(_two_symbols)),
    # guard: a column name with a newline is shown escaped
    Case("import-newline-in-column-name", _import("f.csv"), ("price column", "'clo\\nse'", "--price-column"),
         setup=_frame(lambda df: df.rename(columns={"Close": "Clo\nse"}), "f.csv")),
    # guard: an unbalanced quote
    Case("import-unbalanced-quote", _import("f.csv"), ("f.csv", "readable", "eof inside string"),
         setup=_text(CSV.replace("2001-01-05,", '"2001-01-05,', 1))),
]
