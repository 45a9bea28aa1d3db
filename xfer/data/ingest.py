"""Read real-world price files (CSV or Parquet) into xfer's market frame, or refuse them.

Real files come in many shapes: a date column called ``Date``, ``DATE``, ``timestamp``,
``observation_date`` or stored as the index; US (``1/2/1986``), day-first (``31/12/1999``)
or ISO dates; OHLCV or a single close column (FRED); extra columns (``OpenInt``,
``Adj Close``); ``,``, ``;`` or tab delimiters; gzip/bz2/xz compression; UTF-8 or UTF-16
text. This module maps them onto ``date, [open, high, low,] close[, volume, spread]`` and
rejects what would make results wrong with an error naming the file, the column and the first
offending rows (with their line numbers in the file as given, before any sorting or dropping).
:func:`read_market_file` is a sequence of checks, each a small function with its own message
(the file's in :mod:`xfer.data.ingest_file`, the dates' in :mod:`xfer.data.ingest_dates`):

* the file: a regular file (not a directory or FIFO, which is never opened), a table (not a
  ZIP/Excel workbook, JSON, HTML or binary file), a header line under :data:`HEAD_BYTES`
  and column names under :data:`MAX_NAME` characters, no two candidate columns with the same
  name (``Date`` and ``date``): pass ``--date-column`` / ``--price-column``;
* dates that do not parse, or that parse both day-first and month-first (``03/04/2001``
  with no day above 12): pass ``--date-format``; dates outside :data:`DATE_RANGE`;
  time-zone-aware timestamps with times of day, or dates with a UTC offset, whose calendar
  date depends on the exchange's zone: pass ``--timezone``;
* numbers with a decimal comma (``"100,2"``), or commas that could be either thousands
  separators or decimal commas (``1,234`` and no other hint): pass ``--decimal``;
  non-numeric column types (bool, datetime) for prices and volumes;
* non-finite numbers (``inf``, ``1e400``, Parquet infinities), non-positive or missing
  prices, conflicting duplicate dates, too few rows;
* bars that are not daily (weekly, monthly, intraday): pass ``--allow-frequency`` to
  import them anyway; the inferred frequency is kept in the catalog entry;
* implausible prices (:func:`check_plausible`): outside :data:`PRICE_RANGE`, dates after
  today, a constant series or a long flat run, one-day jumps of an unadjusted split or a
  change of unit: pass ``--allow-implausible`` to import them anyway.

Gaps between consecutive bars longer than :data:`GAP_DAYS` calendar days (daily bars; three
median spacings for other frequencies) are not refused but reported, and kept in the catalog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from xfer.data.ingest_dates import DATE_FORMATS, DATE_RANGE, parse_dates
from xfer.data.ingest_file import (
    COLUMN_ALIASES,
    DATE_NAMES,
    DELIMITERS,
    HEAD_BYTES,
    MAX_NAME,
    clip,
    find_date_column,
    first_rows,
    names_list,
    norm,
    open_table,
)
from xfer.errors import XferInputError

__all__ = ["COLUMN_ALIASES", "DATE_FORMATS", "DATE_NAMES", "DATE_RANGE", "DELIMITERS", "GAP_DAYS", "HEAD_BYTES",
           "MAX_NAME", "IngestReport", "check_plausible", "infer_frequency", "read_market_file"]

MISSING_TOKENS = (".", "", "NA", "N/A", "NaN", "nan", "null", "#N/A")
DECIMALS = (".", ",")
GAP_DAYS = 10
"""Gaps between consecutive daily bars longer than this many calendar days are reported."""
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "annual", "intraday")
_DAILY_MAX_STEP = 4.0  # median spacing (calendar days) of daily bars: 1 (3 over weekends)

PRICE_RANGE = (1e-6, 1e9)
"""Prices outside this range are refused as implausible (embedded samples: 0.098 to 4,797)."""
MAX_JUMP = math.log(4.0)
"""One-day |log move| of the close refused as implausible (x4 or -75%). The embedded samples'
largest is log(3.0) = 1.10 (rrc, 1990-04-10), then 0.77 (vix, 2018-02-05), 0.73 (aapl, 2000-09-29)."""
SPLIT_JUMP = math.log(1.9)
SPLIT_SIGMAS = 50.0
"""A move over log(1.9) (an unadjusted 2:1 split is log 2) is also refused when it is more than
this many robust daily sigmas (1.4826 x the MAD of the non-zero log moves) of its own series:
the embedded samples' largest such move is 38.6 sigmas (rrc), a 2:1 split in a series of 1%
daily moves is 69. A real -52% day (aapl 2000-09-29, 36 sigmas) and a split cannot be told
apart from one day's move: splits in series of more than 1.4% daily moves pass."""
MAX_FLAT_BARS = 100
"""Longest run of bars with the same close accepted (embedded samples: 69, rrc in 1990)."""

_THOUSANDS_COMMA = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"
_THOUSANDS_DOT = r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"
_IMPLAUSIBLE_HINT = ("check the file (an unadjusted split, a change of unit, placeholder or stale prices, "
                     "two-digit years); pass --allow-implausible to import it anyway")


@dataclass
class IngestReport:
    """What the reader did besides mapping columns, so the CLI can tell the user."""

    date_column: str = ""
    date_format: str = ""
    delimiter: str = ""
    decimal: str = "."
    compression: str = ""
    encoding: str = ""
    mapped: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    dropped_missing: int = 0
    dropped_identical_duplicates: int = 0
    sorted_rows: bool = False
    frequency: str = "daily"
    times_dropped: bool = False
    gap_days: float = GAP_DAYS
    gaps: list[tuple[date, date]] = field(default_factory=list)


# ----------------------------------------------------------------------- columns and numbers


def _map_columns(
    raw: pd.DataFrame, path: Path, date_col: str, price_column: str | None
) -> dict[str, str]:
    lower = {norm(c): c for c in raw.columns if c != date_col}
    mapped: dict[str, str] = {}
    for canon, aliases in COLUMN_ALIASES.items():
        for a in aliases:
            if a in lower:
                mapped[canon] = lower[a]
                break
    if price_column is not None:
        hit = price_column if price_column in raw.columns else lower.get(norm(price_column))
        if hit is None:
            raise XferInputError(
                file=path, field="--price-column",
                expected=f"one of {names_list([c for c in raw.columns if c != date_col])}",
                found=repr(clip(price_column)),
            )
        mapped["close"] = hit
    if "close" not in mapped:
        others = [c for c in raw.columns if c != date_col]
        if len(others) == 1:  # FRED-style: a date and one series
            mapped["close"] = others[0]
        else:
            raise XferInputError(
                file=path,
                field="price column",
                expected="a column named close/price/last/settle, or a single value column",
                found=f"columns {names_list(others)}",
                hint="pass --price-column NAME (e.g. 'Adj Close')",
            )
    return mapped


def _decide_decimal(texts: dict[str, pd.Series], raw: pd.DataFrame, path: Path) -> str:
    """The decimal mark of a file's number columns when none was given, or refuse.

    Commas are read as thousands separators only when every comma fits that reading
    (``1,234`` / ``12,345.6``) and the file shows a decimal point somewhere (``1,234.5``,
    ``98.7``, or two comma groups ``1,234,567``); anything else is a decimal comma, or
    cannot be told from one, and needs ``--decimal``.
    """
    any_comma = False
    us_evidence = False
    for name, s in texts.items():
        comma = s.str.contains(",", regex=False).to_numpy()
        if not comma.any():
            us_evidence = us_evidence or bool(s.str.fullmatch(r"[+-]?\d*\.\d+").any())
            continue
        any_comma = True
        thousands = s.str.fullmatch(_THOUSANDS_COMMA).to_numpy()
        if (comma & ~thousands).any():
            bad = comma & ~thousands
            raise XferInputError(
                file=path, field=f"column {name!r}",
                expected="numbers with '.' as the decimal mark",
                found=f"decimal commas, first: {first_rows(raw, bad)}",
                hint="pass --decimal , to read ',' as the decimal mark (and '.' as a thousands separator)",
            )
        us_evidence = us_evidence or bool(
            s.str.fullmatch(r"[+-]?\d*\.\d+").any() or s.str.contains(".", regex=False)[comma].any()
            or (s[comma].str.count(",") > 1).any()
        )
    if any_comma and not us_evidence:
        for name, s in texts.items():
            comma = s.str.contains(",", regex=False).to_numpy()
            if comma.any():
                raise XferInputError(
                    file=path, field=f"column {name!r}",
                    expected="numbers whose comma is clearly a thousands separator or a decimal mark",
                    found=(f"values like {clip(s[comma].iloc[0])!r} that read as thousands or as a decimal comma, "
                           f"first: {first_rows(raw, comma)}"),
                    hint="pass --decimal . (comma separates thousands) or --decimal , (comma is the decimal mark)",
                )
    return "."


def _numbers(s: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers of a text column and the mask of values that are not numbers."""
    if decimal == ",":
        dots = s.str.fullmatch(_THOUSANDS_DOT).to_numpy()
        stray = s.str.contains(".", regex=False).to_numpy() & ~dots
        s = s.where(~dots, s.str.replace(".", "", regex=False)).str.replace(",", ".", regex=False)
    else:
        thousands = s.str.fullmatch(_THOUSANDS_COMMA).to_numpy()
        stray = s.str.contains(",", regex=False).to_numpy() & ~thousands
        s = s.str.replace(",", "", regex=False)
    num = pd.to_numeric(s.where(~stray), errors="coerce")
    return num, stray | num.isna().to_numpy()


def _column_texts(raw: pd.DataFrame, path: Path, mapped: dict[str, str]) -> dict[str, pd.Series]:
    """The text columns among the mapped ones (missing tokens as ''); any other must be numeric."""
    texts: dict[str, pd.Series] = {}
    for canon, name in mapped.items():
        col = raw[name]
        if isinstance(col.dtype, pd.CategoricalDtype):  # Parquet dictionary-encoded columns
            col = raw[name] = col.astype(col.cat.categories.dtype)
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            s = col.astype(str).str.strip()
            texts[canon] = s.where(~s.isin(MISSING_TOKENS), "")
        elif col.dtype.kind not in "iuf":
            raise XferInputError(
                file=path, field=f"column {name!r}", expected="numbers (an integer or float column)",
                found=f"a column of type {col.dtype}",
                hint="a true/false, date or duration column is no price or volume: pass --price-column NAME",
            )
    return texts


def _number_columns(raw: pd.DataFrame, path: Path, mapped: dict[str, str], decimal: str | None,
                    dates: pd.Series) -> tuple[pd.DataFrame, str]:
    """The market frame's columns as finite floats (NaN where missing), and the decimal mark."""
    texts = _column_texts(raw, path, mapped)
    if decimal is None:
        named = {str(mapped[c]): s[s != ""] for c, s in texts.items()}
        decimal = _decide_decimal(named, raw, path) if texts else "."
    out = pd.DataFrame({"date": dates.to_numpy()}, index=raw.index)
    for canon in ("open", "high", "low", "close", "volume", "spread"):
        if canon not in mapped:
            continue
        if canon in texts:
            s = texts[canon]
            num, garbage = _numbers(s, decimal)
            garbage &= ~(s == "").to_numpy()
            if garbage.any():
                signs = s[garbage].str.contains(r"[$€£¥%]").any()
                raise XferInputError(
                    file=path, field=f"column {mapped[canon]!r}", expected="numbers",
                    found=f"non-numeric values, first: {first_rows(raw, garbage)}",
                    hint="remove currency and percent signs ('$12.50' -> 12.50)" if signs
                    else None if decimal == "." else "--decimal , reads '1.234,5' as 1234.5",
                )
        else:
            num = pd.to_numeric(raw[mapped[canon]], errors="coerce")
        num = num.astype("float64")
        inf = np.isinf(num.to_numpy())
        if inf.any():
            raise XferInputError(
                file=path, field=f"column {mapped[canon]!r}", expected="finite numbers",
                found=(f"{int(inf.sum())} infinite value(s) ('inf', or too large for a 64-bit float), "
                       f"first: {first_rows(raw, inf)}"),
            )
        out[canon] = num.to_numpy()
    return out, decimal


# ----------------------------------------------------------------------- rows


def _check_prices(out: pd.DataFrame, raw: pd.DataFrame, path: Path, mapped: dict[str, str],
                  drop_missing: bool, report: IngestReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every price present (or its row dropped) and positive; volumes and spreads non-negative."""
    price_cols = [c for c in ("open", "high", "low", "close") if c in out]
    missing_mask = out[price_cols].isna().any(axis=1)
    if missing_mask.any():
        if not drop_missing:
            raise XferInputError(
                file=path, field=f"column(s) {[mapped[c] for c in price_cols]}",
                expected="a price on every row",
                found=f"{int(missing_mask.sum())} missing price(s), first: {first_rows(raw, missing_mask)}",
                hint="pass --drop-missing to drop those rows (e.g. FRED holidays marked '.')",
            )
        report.dropped_missing = int(missing_mask.sum())
        keep = ~missing_mask.to_numpy()
        out, raw = out[keep], raw[keep]
    nonpos = (out[price_cols] <= 0).any(axis=1)
    if nonpos.any():
        raise XferInputError(
            file=path, field=f"column(s) {[mapped[c] for c in price_cols]}",
            expected="strictly positive prices",
            found=f"{int(nonpos.sum())} non-positive price(s), first: {first_rows(raw, nonpos)}",
        )
    for extra in ("volume", "spread"):
        if extra in out and ((out[extra] < 0) | out[extra].isna()).any():
            bad = (out[extra] < 0) | out[extra].isna()
            raise XferInputError(
                file=path, field=f"column {mapped[extra]!r}", expected="non-negative numbers",
                found=f"{int(bad.sum())} bad value(s), first: {first_rows(raw, bad)}",
            )
    return out, raw


def _sort_dedupe(out: pd.DataFrame, raw: pd.DataFrame, path: Path, date_col: str,
                 report: IngestReport) -> pd.DataFrame:
    """Rows in date order, identical duplicates collapsed; conflicting duplicates refused."""
    order = np.argsort(out["date"].to_numpy(), kind="stable")
    report.sorted_rows = bool((order != np.arange(len(order))).any())
    out, raw = out.iloc[order], raw.iloc[order]
    dup_any = out["date"].duplicated(keep=False)
    if dup_any.any():
        conflicting = out[dup_any].groupby("date").nunique(dropna=False).gt(1).any(axis=1)
        if conflicting.any():
            bad_dates = set(conflicting[conflicting].index)
            mask = out["date"].isin(bad_dates)
            raise XferInputError(
                file=path, field=f"column {date_col!r}",
                expected="one row per date (or identical duplicates)",
                found=f"{len(bad_dates)} date(s) with different values, first: {first_rows(raw, mask)}",
            )
        report.dropped_identical_duplicates = int(out["date"].duplicated().sum())
        out = out[~out["date"].duplicated()]
    return out


def infer_frequency(dates: pd.Series | pd.DatetimeIndex) -> tuple[str, float]:
    """Bar frequency of sorted, unique timestamps, and their median spacing in calendar days.

    ``intraday`` when a calendar date holds several bars (or bars are less than 18 hours
    apart); otherwise, from the median spacing between dates: ``daily`` up to 4 days (business
    days with weekend and holiday gaps), ``weekly`` up to 10, ``monthly`` up to 45,
    ``quarterly`` up to 135, else ``annual``.
    """
    d = pd.DatetimeIndex(dates).as_unit("ns")
    if len(d) < 2:
        return "daily", 1.0
    step = float(np.median(np.diff(d.asi8)) / 86_400e9)
    days = d.normalize()
    if (d != days).any() and (days.duplicated().any() or step < 0.75):
        return "intraday", step
    step = float(np.median(np.diff(days.unique().asi8)) / 86_400e9) if days.nunique() > 1 else step
    for name, limit in (("daily", _DAILY_MAX_STEP), ("weekly", 10), ("monthly", 45), ("quarterly", 135)):
        if step <= limit:
            return name, step
    return "annual", step


def _stamp(t: pd.Timestamp) -> str:
    return str(t.date()) if t == t.normalize() else str(t)


def _spacing(step: float) -> str:
    return f"{step * 24:.2g} hours" if step < 1 else f"{step:.3g} calendar days"


def _check_frequency(out: pd.DataFrame, path: Path, date_col: str, allow_frequency: bool,
                     report: IngestReport) -> pd.DataFrame:
    """Daily bars (unless allowed), times of day dropped from them, gaps reported."""
    freq, step = infer_frequency(out["date"])
    report.frequency = freq
    if freq != "daily" and not allow_frequency:
        raise XferInputError(
            file=path, field=f"column {date_col!r}",
            expected=f"daily bars (median spacing up to {_DAILY_MAX_STEP:g} calendar days, one bar per date)",
            found=(f"{freq} bars (median spacing {_spacing(step)}, {len(out)} rows "
                   f"{_stamp(out['date'].iloc[0])}..{_stamp(out['date'].iloc[-1])})"),
            hint="features and horizons count daily bars: resample to daily, or pass --allow-frequency "
                 "to import it anyway (the frequency is kept in the catalog)",
        )
    if freq != "intraday":
        days = out["date"].dt.normalize()
        report.times_dropped = bool((days != out["date"]).any())
        out = out.assign(date=days)
    days = pd.DatetimeIndex(out["date"]).as_unit("ns").normalize().unique()
    report.gap_days = float(GAP_DAYS) if freq in ("daily", "intraday") else max(float(GAP_DAYS), 3 * step)
    if len(days) > 1:
        spans = np.diff(days.asi8) / 86_400e9
        for i in np.flatnonzero(spans > report.gap_days):
            report.gaps.append((days[i].date(), days[i + 1].date()))
    return out


# ----------------------------------------------------------------------- plausibility


def _at(out: pd.DataFrame, j: int, unit: str) -> str:
    return f"{_stamp(out['date'].iloc[j])} ({unit} {out.index[j]})"


def check_plausible(out: pd.DataFrame, path: Path, mapped: dict[str, str], unit: str = "line",
                    date_format: str = "") -> None:
    """Refuse prices no real market has (see :data:`PRICE_RANGE`, :data:`MAX_JUMP`,
    :data:`SPLIT_SIGMAS`, :data:`MAX_FLAT_BARS`) and dates after today; ``--allow-implausible``
    skips this. ``out`` is sorted by date and indexed by the rows' lines in the file."""
    def refuse(col: str, expected: str, found: str, hint: str = _IMPLAUSIBLE_HINT) -> None:
        raise XferInputError(file=path, field=f"column {mapped.get(col, col)!r}", expected=expected, found=found,
                             hint=hint)

    lo, hi = PRICE_RANGE
    for c in (c for c in ("open", "high", "low", "close") if c in out):
        v = out[c].to_numpy()
        bad = np.flatnonzero((v < lo) | (v > hi))
        if len(bad):
            shown = "; ".join(f"{_at(out, j, unit)}: {float(v[j])!r}" for j in bad[:3])
            refuse(c, f"prices from {lo:g} to {hi:g}", f"{len(bad)} price(s) outside, first: {shown}")
    today = pd.Timestamp.today().normalize()
    late = np.flatnonzero((out["date"] > today + pd.Timedelta(days=1)).to_numpy())
    if len(late):
        two = "%y" in date_format
        refuse("date", f"dates up to today ({today.date()})",
               f"{len(late)} date(s) in the future, first: {_at(out, late[0], unit)}",
               ("'%y' reads two-digit years 00-68 as 2000-2068: write four-digit years, or pass "
                "--date-format with %Y; " if two else "") + _IMPLAUSIBLE_HINT)
    c = out["close"].to_numpy()
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    runs = np.diff(np.r_[starts, len(c)])
    k = int(np.argmax(runs))
    if len(c) > 1 and (runs[k] == len(c) or runs[k] > MAX_FLAT_BARS):
        a, b = starts[k], starts[k] + runs[k] - 1
        refuse("close", f"prices that move (at most {MAX_FLAT_BARS} bars in a row with the same close)",
               f"the same close {float(c[a])!r} on {runs[k]} bars in a row, {_at(out, a, unit)}.."
               f"{_at(out, b, unit)}{' (every bar: a constant series)' if runs[k] == len(c) else ''}")
    lr = np.diff(np.log(c))
    moves = lr[lr != 0]
    sigma = 1.4826 * float(np.median(np.abs(moves - np.median(moves)))) if len(moves) >= 20 else math.inf
    bad = np.flatnonzero((np.abs(lr) > MAX_JUMP) | ((np.abs(lr) > SPLIT_JUMP) & (np.abs(lr) > SPLIT_SIGMAS * sigma)))
    if len(bad):
        shown = "; ".join(f"{_at(out, j + 1, unit)}: {float(c[j]):.6g} -> {float(c[j + 1]):.6g} "
                          f"(x{math.exp(lr[j]):.3g}, log move {lr[j]:+.2f})" for j in bad[:3])
        refuse("close", f"one-day moves of the close under x{math.exp(MAX_JUMP):g} either way (|log move| "
                        f"<= {MAX_JUMP:.2f}), and under x{math.exp(SPLIT_JUMP):g} ({SPLIT_JUMP:.2f}) when over "
                        f"{SPLIT_SIGMAS:g} robust daily sigmas ({sigma:.3g} here)",
               f"{len(bad)} jump(s) (an unadjusted split, or a change of unit?), first: {shown}")


# ----------------------------------------------------------------------- the reader


def _check_options(path: Path, delimiter: str | None, decimal: str | None, timezone: str | None) -> None:
    if decimal is not None and decimal not in DECIMALS:
        raise XferInputError(file=path, field="--decimal", expected="'.' or ','", found=repr(clip(decimal)))
    if delimiter is not None and len(delimiter) != 1:
        raise XferInputError(file=path, field="--delimiter", expected="one character, e.g. ';' or a tab",
                             found=repr(clip(delimiter)))
    if timezone is not None:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(timezone)
        except Exception:  # ZoneInfoNotFoundError, or ValueError for a path-like key
            raise XferInputError(file=path, field="--timezone", expected="an IANA time zone, e.g. America/New_York or UTC",
                                 found=repr(clip(timezone))) from None


def read_market_file(
    path: str | Path,
    *,
    price_column: str | None = None,
    date_column: str | None = None,
    date_format: str | None = None,
    drop_missing: bool = False,
    min_rows: int = 0,
    delimiter: str | None = None,
    decimal: str | None = None,
    allow_frequency: bool = False,
    timezone: str | None = None,
    allow_implausible: bool = False,
) -> tuple[pd.DataFrame, IngestReport]:
    """Read and validate a price file; return the market frame and what was done.

    ``delimiter`` (CSV) is detected among :data:`DELIMITERS` when not given; ``decimal``
    (``'.'`` or ``','``) is decided from the file when not given, and the file is refused
    when it cannot be. Bars must be daily unless ``allow_frequency``. ``timezone`` (an IANA
    name) converts time-zone-aware timestamps and dates with a UTC offset into that zone
    before their date is taken. :func:`check_plausible` runs unless ``allow_implausible``.

    Raises :class:`XferInputError` for anything that would make results wrong.
    """
    path = Path(path)
    _check_options(path, delimiter, decimal, timezone)
    raw, delim, src = open_table(path, delimiter, date_column, price_column)
    if raw.empty:
        raise XferInputError(file=path, expected="at least one data row", found="an empty table")
    report = IngestReport(delimiter=DELIMITERS.get(delim, repr(delim)) if delim else "",
                          compression=src.compression or "", encoding=src.encoding if src.kind == "csv" else "")
    date_col = find_date_column(raw, path, date_column, delim)
    date_values = raw[date_col].copy()
    date_values.attrs["unit"] = raw.attrs["unit"]
    dates, report.date_format = parse_dates(date_values, path, str(date_col), date_format, timezone)
    report.date_column = str(date_col)
    mapped = _map_columns(raw, path, date_col, price_column)
    report.mapped = {k: str(v) for k, v in mapped.items()}
    report.ignored_columns = [str(c) for c in raw.columns if c != date_col and c not in mapped.values()]
    out, report.decimal = _number_columns(raw, path, mapped, decimal, dates)
    out, raw = _check_prices(out, raw, path, mapped, drop_missing, report)
    out = _sort_dedupe(out, raw, path, date_col, report)
    out = _check_frequency(out, path, str(date_col), allow_frequency, report)
    if not allow_implausible:
        check_plausible(out, path, {**mapped, "date": date_col}, raw.attrs["unit"], report.date_format)
    if len(out) < min_rows:
        raise XferInputError(
            file=path, field="rows",
            expected=f"at least {min_rows} daily bars (feature warm-up + label horizon + splits)",
            found=f"{len(out)}",
            hint="pass --min-rows to lower the bar if you use short windows",
        )
    return out.reset_index(drop=True), report
