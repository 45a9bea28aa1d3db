"""Read real-world price files (CSV or Parquet) into xfer's market frame, or refuse them.

Real files come in many shapes: a date column called ``Date``, ``DATE``, ``timestamp``,
``observation_date`` or stored as the index; US (``1/2/1986``), day-first (``31/12/1999``)
or ISO dates; OHLCV or a single close column (FRED); extra columns (``OpenInt``,
``Adj Close``); ``,``, ``;`` or tab delimiters. This module maps them onto
``date, [open, high, low,] close[, volume, spread]`` and rejects what would make results
wrong with an error naming the file, the column and the first offending rows (with their
line numbers in the file as given, before any sorting or dropping):

* dates that do not parse, or that parse both day-first and month-first (``03/04/2001``
  with no day above 12): pass ``--date-format``;
* numbers with a decimal comma (``"100,2"``), or commas that could be either thousands
  separators or decimal commas (``1,234`` and no other hint): pass ``--decimal``;
* non-finite numbers (``inf``, ``1e400``, Parquet infinities), non-positive or missing
  prices, conflicting duplicate dates, too few rows;
* bars that are not daily (weekly, monthly, intraday): pass ``--allow-frequency`` to
  import them anyway; the inferred frequency is kept in the catalog entry.

Gaps between consecutive bars longer than :data:`GAP_DAYS` calendar days (daily bars; three
median spacings for other frequencies) are not refused but reported, and kept in the catalog.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from xfer.errors import XferInputError

DATE_NAMES = ("date", "datetime", "timestamp", "time", "day", "observation_date", "dt")
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "price", "last", "px_last", "settle"),
    "volume": ("volume", "vol", "v"),
    "spread": ("spread", "spread_bps"),
}
DATE_FORMATS = (
    "%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d",
    "%d.%m.%Y", "%m.%d.%Y",
)
"""Formats tried when no ``--date-format`` is given; a file two of them read differently is refused."""
MISSING_TOKENS = (".", "", "NA", "N/A", "NaN", "nan", "null", "#N/A")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
"""Delimiters recognised in CSV files (the one giving a consistent table wins)."""
DECIMALS = (".", ",")
GAP_DAYS = 10
"""Gaps between consecutive daily bars longer than this many calendar days are reported."""
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly", "annual", "intraday")
_DAILY_MAX_STEP = 4.0  # median spacing (calendar days) of daily bars: 1 (3 over weekends)

_THOUSANDS_COMMA = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"
_THOUSANDS_DOT = r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"


@dataclass
class IngestReport:
    """What the reader did besides mapping columns, so the CLI can tell the user."""

    date_column: str = ""
    date_format: str = ""
    delimiter: str = ""
    decimal: str = "."
    mapped: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    dropped_missing: int = 0
    dropped_identical_duplicates: int = 0
    frequency: str = "daily"
    times_dropped: bool = False
    gap_days: float = GAP_DAYS
    gaps: list[tuple[date, date]] = field(default_factory=list)


def _first_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """The first offending rows, cited by their line (CSV) or row (Parquet) in the file.

    ``frame.index`` holds those numbers (set by :func:`_read_raw` and carried through every
    sort and drop), and ``frame.attrs['unit']`` says which of the two they are.
    """
    m = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(m)[:limit]
    unit = frame.attrs.get("unit", "line")
    parts = [f"{unit} {frame.index[i]}: {frame.iloc[i].to_dict()}" for i in idx]
    more = int(m.sum()) - len(idx)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _sniff_delimiter(path: Path) -> str:
    """The delimiter that splits the first lines into the widest consistent table."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            sample = fh.read(1 << 16)
    except OSError:
        return ","
    lines = [ln for ln in sample.splitlines() if ln.strip()][:50]
    if len(lines) > 2 and len(sample) == 1 << 16:
        lines = lines[:-1]  # the last line of a cut sample may be partial
    best, best_score = ",", (False, 1)
    for delim in DELIMITERS:
        rows = list(csv.reader(lines, delimiter=delim))
        if not rows:
            continue
        width = len(rows[0])
        score = (all(len(r) == width for r in rows), width)
        if width > 1 and score > best_score:
            best, best_score = delim, score
    return best


def _read_raw(path: Path, delimiter: str | None) -> tuple[pd.DataFrame, str]:
    if not path.is_file():
        raise XferInputError(file=path, expected="an existing file", found="no such file")
    suffixes = "".join(path.suffixes).lower()
    delim = ""
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            raw = pd.read_parquet(path)
            if isinstance(raw.index, pd.DatetimeIndex):  # dates stored as the index
                raw = raw.rename_axis(raw.index.name or "date").reset_index()
            elif raw.index.name:
                raw = raw.reset_index()
            raw.index = pd.RangeIndex(1, len(raw) + 1)  # 1-based row numbers
            raw.attrs["unit"] = "row"
            return raw, delim
        delim = delimiter if delimiter is not None else _sniff_delimiter(path)
        raw = pd.read_csv(
            path, sep=delim, dtype=str, keep_default_na=False, na_values=[],
            skipinitialspace=True, skip_blank_lines=False,
        )
    except XferInputError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for corrupt files
        raise XferInputError(
            file=path,
            expected="a readable CSV or Parquet file",
            found=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        ) from exc
    # Line numbers of the file: the header is line 1. Blank lines were kept so that the
    # numbering matches the file; drop them now, keeping the numbers.
    raw.index = pd.RangeIndex(2, len(raw) + 2)
    blank = np.ones(len(raw), dtype=bool)
    for i in range(raw.shape[1]):
        col = raw.iloc[:, i]
        blank &= col.isna().to_numpy(dtype=bool) | (col.astype(str).str.strip() == "").to_numpy(dtype=bool)
    raw = raw[~blank]
    raw.attrs["unit"] = "line"
    # An unnamed first column is the index written by `DataFrame.to_csv()`.
    first = raw.columns[0] if len(raw.columns) else ""
    if str(first).startswith("Unnamed: 0") or str(first) == "":
        raw = raw.rename(columns={first: "date"})
    return raw, delim


def _find_date_column(raw: pd.DataFrame, path: Path, date_column: str | None, delim: str) -> str:
    cols = {str(c).strip().lower().lstrip("\ufeff"): c for c in raw.columns}
    if date_column is not None:
        if date_column in raw.columns:
            return date_column
        if date_column.lower() in cols:
            return cols[date_column.lower()]
        raise XferInputError(
            file=path, field="--date-column", expected=f"one of {list(raw.columns)}",
            found=repr(date_column),
        )
    for name in DATE_NAMES:
        if name in cols:
            return cols[name]
    hint = "pass --date-column NAME"
    if len(raw.columns) == 1 and delim:
        hint = (f"the file was split on {DELIMITERS.get(delim, repr(delim))}s into one column; "
                "pass --delimiter (e.g. --delimiter ';') if it uses another delimiter, or --date-column NAME")
    raise XferInputError(
        file=path,
        field="date column",
        expected=f"a column named one of {list(DATE_NAMES)} (any case) or a date index",
        found=f"columns {list(raw.columns)}",
        hint=hint,
    )


def _parse_dates(
    values: pd.Series, path: Path, col: str, fmt: str | None
) -> tuple[pd.Series, str]:
    """Parse a date column; times of day are kept (see :func:`infer_frequency`)."""
    frame = pd.DataFrame({col: values}, index=values.index)
    frame.attrs["unit"] = values.attrs.get("unit", "line")
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        if parsed.isna().any():
            raise XferInputError(
                file=path, field=f"column {col!r}", expected="a date on every row",
                found=f"{int(parsed.isna().sum())} missing date(s), first: {_first_rows(frame, parsed.isna())}",
            )
        return parsed.astype("datetime64[ns]"), "native"
    text = values.astype(str).str.strip()
    formats = (fmt,) if fmt else DATE_FORMATS
    best: tuple[int, pd.Series, str] | None = None
    full: list[tuple[str, pd.Series]] = []
    for f in formats:
        parsed = pd.to_datetime(text, format=f, errors="coerce")
        bad = int(parsed.isna().sum())
        if bad == 0:
            full.append((f, parsed))
        if best is None or bad < best[0]:
            best = (bad, parsed, f)
    if full:
        f0, p0 = full[0]
        for f1, p1 in full[1:]:
            differ = (p0 != p1).to_numpy()
            if differ.any():
                i = int(np.flatnonzero(differ)[0])
                raise XferInputError(
                    file=path, field=f"column {col!r}",
                    expected="dates in one unambiguous format",
                    found=(f"dates that read as both {f0} and {f1} (e.g. {frame.attrs['unit']} "
                           f"{frame.index[i]}: {text.iloc[i]!r} is {p0.iloc[i].date()} or "
                           f"{p1.iloc[i].date()}; no day above 12 tells them apart)"),
                    hint=f"pass --date-format '{f0}' or --date-format '{f1}'",
                )
        return p0.astype("datetime64[ns]"), f0
    assert best is not None
    raise XferInputError(
        file=path,
        field=f"column {col!r}",
        expected=f"dates in one format of {list(formats)}",
        found=f"{best[0]} unparseable value(s), first: {_first_rows(frame, best[1].isna())}",
        hint="pass --date-format, e.g. '%d/%m/%Y' or '%Y-%m-%d %H:%M'",
    )


def _map_columns(
    raw: pd.DataFrame, path: Path, date_col: str, price_column: str | None
) -> dict[str, str]:
    lower = {str(c).strip().lower(): c for c in raw.columns if c != date_col}
    mapped: dict[str, str] = {}
    for canon, aliases in COLUMN_ALIASES.items():
        for a in aliases:
            if a in lower:
                mapped[canon] = lower[a]
                break
    if price_column is not None:
        hit = price_column if price_column in raw.columns else lower.get(price_column.lower())
        if hit is None:
            raise XferInputError(
                file=path, field="--price-column",
                expected=f"one of {[c for c in raw.columns if c != date_col]}",
                found=repr(price_column),
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
                found=f"columns {others}",
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
                found=f"decimal commas, first: {_first_rows(raw, bad)}",
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
                    found=(f"values like {s[comma].iloc[0]!r} that read as thousands or as a decimal comma, "
                           f"first: {_first_rows(raw, comma)}"),
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
) -> tuple[pd.DataFrame, IngestReport]:
    """Read and validate a price file; return the market frame and what was done.

    ``delimiter`` (CSV) is detected among :data:`DELIMITERS` when not given; ``decimal``
    (``'.'`` or ``','``) is decided from the file when not given, and the file is refused
    when it cannot be. Bars must be daily unless ``allow_frequency``.

    Raises :class:`XferInputError` for anything that would make results wrong.
    """
    path = Path(path)
    if decimal is not None and decimal not in DECIMALS:
        raise XferInputError(file=path, field="--decimal", expected="'.' or ','", found=repr(decimal))
    if delimiter is not None and len(delimiter) != 1:
        raise XferInputError(file=path, field="--delimiter", expected="one character, e.g. ';' or a tab",
                             found=repr(delimiter))
    raw, delim = _read_raw(path, delimiter)
    if raw.empty:
        raise XferInputError(file=path, expected="at least one data row", found="an empty table")
    report = IngestReport(delimiter=DELIMITERS.get(delim, repr(delim)) if delim else "")
    date_col = _find_date_column(raw, path, date_column, delim)
    date_values = raw[date_col].copy()
    date_values.attrs["unit"] = raw.attrs["unit"]
    dates, fmt = _parse_dates(date_values, path, str(date_col), date_format)
    report.date_column, report.date_format = str(date_col), fmt
    mapped = _map_columns(raw, path, date_col, price_column)
    report.mapped = {k: str(v) for k, v in mapped.items()}
    report.ignored_columns = [str(c) for c in raw.columns if c != date_col and c not in mapped.values()]

    canon_cols = [c for c in ("open", "high", "low", "close", "volume", "spread") if c in mapped]
    texts: dict[str, pd.Series] = {}
    for canon in canon_cols:
        col = raw[mapped[canon]]
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            s = col.astype(str).str.strip()
            texts[canon] = s.where(~s.isin(MISSING_TOKENS), "")
    if decimal is None:
        named = {str(mapped[c]): s[s != ""] for c, s in texts.items()}
        decimal = _decide_decimal(named, raw, path) if texts else "."
    report.decimal = decimal

    out = pd.DataFrame({"date": dates.to_numpy()}, index=raw.index)
    for canon in canon_cols:
        if canon in texts:
            s = texts[canon]
            missing = (s == "").to_numpy()
            num, garbage = _numbers(s, decimal)
            garbage &= ~missing
            if garbage.any():
                raise XferInputError(
                    file=path, field=f"column {mapped[canon]!r}", expected="numbers",
                    found=f"non-numeric values, first: {_first_rows(raw, garbage)}",
                    hint=None if decimal == "." else "--decimal , reads '1.234,5' as 1234.5",
                )
        else:
            num = pd.to_numeric(raw[mapped[canon]], errors="coerce")
        num = num.astype("float64")
        inf = np.isinf(num.to_numpy())
        if inf.any():
            raise XferInputError(
                file=path, field=f"column {mapped[canon]!r}", expected="finite numbers",
                found=(f"{int(inf.sum())} infinite value(s) ('inf', or too large for a 64-bit float), "
                       f"first: {_first_rows(raw, inf)}"),
            )
        out[canon] = num.to_numpy()

    price_cols = [c for c in ("open", "high", "low", "close") if c in out]
    missing_mask = out[price_cols].isna().any(axis=1)
    if missing_mask.any():
        if not drop_missing:
            raise XferInputError(
                file=path, field=f"column(s) {[mapped[c] for c in price_cols]}",
                expected="a price on every row",
                found=f"{int(missing_mask.sum())} missing price(s), first: {_first_rows(raw, missing_mask)}",
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
            found=f"{int(nonpos.sum())} non-positive price(s), first: {_first_rows(raw, nonpos)}",
        )
    for extra in ("volume", "spread"):
        if extra in out and ((out[extra] < 0) | out[extra].isna()).any():
            bad = (out[extra] < 0) | out[extra].isna()
            raise XferInputError(
                file=path, field=f"column {mapped[extra]!r}", expected="non-negative numbers",
                found=f"{int(bad.sum())} bad value(s), first: {_first_rows(raw, bad)}",
            )

    order = np.argsort(out["date"].to_numpy(), kind="stable")
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
                found=f"{len(bad_dates)} date(s) with different values, first: {_first_rows(raw, mask)}",
            )
        report.dropped_identical_duplicates = int(out["date"].duplicated().sum())
        out = out.drop_duplicates("date")
    out = out.reset_index(drop=True)

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
        out["date"] = days
    days = pd.DatetimeIndex(out["date"]).as_unit("ns").normalize().unique()
    report.gap_days = float(GAP_DAYS) if freq in ("daily", "intraday") else max(float(GAP_DAYS), 3 * step)
    if len(days) > 1:
        spans = np.diff(days.asi8) / 86_400e9
        for i in np.flatnonzero(spans > report.gap_days):
            report.gaps.append((days[i].date(), days[i + 1].date()))

    if len(out) < min_rows:
        raise XferInputError(
            file=path, field="rows",
            expected=f"at least {min_rows} daily bars (feature warm-up + label horizon + splits)",
            found=f"{len(out)}",
            hint="pass --min-rows to lower the bar if you use short windows",
        )
    return out, report
