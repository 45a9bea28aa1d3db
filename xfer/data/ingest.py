"""Read real-world price files (CSV or Parquet) into xfer's market frame, or refuse them.

Real files come in many shapes: a date column called ``Date``, ``DATE``, ``timestamp``,
``observation_date`` or stored as the index; US (``1/2/1986``) or ISO dates; OHLCV or a
single close column (FRED); extra columns (``OpenInt``, ``Adj Close``). This module maps
them onto ``date, [open, high, low,] close[, volume, spread]`` and rejects what would make
results wrong (bad dates, conflicting duplicates, non-positive or missing prices, too few
rows) with an error naming the file, the column and the first offending rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%d.%m.%Y")
MISSING_TOKENS = (".", "", "NA", "N/A", "NaN", "nan", "null", "#N/A")


@dataclass
class IngestReport:
    """What the reader did besides mapping columns, so the CLI can tell the user."""

    date_column: str = ""
    date_format: str = ""
    mapped: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    dropped_missing: int = 0
    dropped_identical_duplicates: int = 0


def _first_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(np.asarray(mask))[:limit]
    # +2: one for the header line, one for 1-based line numbers in a CSV
    parts = [f"line {i + 2}: {frame.iloc[i].to_dict()}" for i in idx]
    more = int(np.asarray(mask).sum()) - len(idx)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise XferInputError(file=path, expected="an existing file", found="no such file")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
            raw = pd.read_parquet(path)
            if isinstance(raw.index, pd.DatetimeIndex):  # dates stored as the index
                raw = raw.rename_axis(raw.index.name or "date").reset_index()
            elif raw.index.name:
                raw = raw.reset_index()
            return raw
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True
        )
    except XferInputError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for corrupt files
        raise XferInputError(
            file=path,
            expected="a readable CSV or Parquet file",
            found=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        ) from exc
    # An unnamed first column is the index written by `DataFrame.to_csv()`.
    first = raw.columns[0] if len(raw.columns) else ""
    if str(first).startswith("Unnamed: 0") or str(first) == "":
        raw = raw.rename(columns={first: "date"})
    return raw


def _find_date_column(raw: pd.DataFrame, path: Path, date_column: str | None) -> str:
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
    raise XferInputError(
        file=path,
        field="date column",
        expected=f"a column named one of {list(DATE_NAMES)} (any case) or a date index",
        found=f"columns {list(raw.columns)}",
        hint="pass --date-column NAME",
    )


def _parse_dates(values: pd.Series, path: Path, col: str, fmt: str | None) -> tuple[pd.Series, str]:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        return parsed.dt.normalize().astype("datetime64[ns]"), "native"
    text = values.astype(str).str.strip()
    formats = (fmt,) if fmt else DATE_FORMATS
    best: tuple[int, pd.Series, str] | None = None
    for f in formats:
        parsed = pd.to_datetime(text, format=f, errors="coerce")
        bad = int(parsed.isna().sum())
        if bad == 0:
            return parsed.astype("datetime64[ns]"), f
        if best is None or bad < best[0]:
            best = (bad, parsed, f)
    assert best is not None
    bad_mask = best[1].isna()
    frame = pd.DataFrame({col: values})
    raise XferInputError(
        file=path,
        field=f"column {col!r}",
        expected=f"dates in one format of {list(formats)}",
        found=f"{best[0]} unparseable value(s), first: {_first_rows(frame, bad_mask)}",
        hint="pass --date-format, e.g. '%d/%m/%Y'",
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


def read_market_file(
    path: str | Path,
    *,
    price_column: str | None = None,
    date_column: str | None = None,
    date_format: str | None = None,
    drop_missing: bool = False,
    min_rows: int = 0,
) -> tuple[pd.DataFrame, IngestReport]:
    """Read and validate a price file; return the market frame and what was done.

    Raises :class:`XferInputError` for anything that would make results wrong.
    """
    path = Path(path)
    raw = _read_raw(path)
    if raw.empty:
        raise XferInputError(file=path, expected="at least one data row", found="an empty table")
    report = IngestReport()
    date_col = _find_date_column(raw, path, date_column)
    dates, fmt = _parse_dates(raw[date_col], path, str(date_col), date_format)
    report.date_column, report.date_format = str(date_col), fmt
    mapped = _map_columns(raw, path, date_col, price_column)
    report.mapped = {k: str(v) for k, v in mapped.items()}
    report.ignored_columns = [str(c) for c in raw.columns if c != date_col and c not in mapped.values()]

    out = pd.DataFrame({"date": dates.to_numpy()})
    for canon in ("open", "high", "low", "close", "volume", "spread"):
        if canon not in mapped:
            continue
        col = raw[mapped[canon]]
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            col = col.astype(str).str.strip().str.replace(",", "", regex=False)
            missing = col.isin(MISSING_TOKENS)
            num = pd.to_numeric(col.where(~missing), errors="coerce")
            garbage = num.isna() & ~missing
            if garbage.any():
                raise XferInputError(
                    file=path, field=f"column {mapped[canon]!r}", expected="numbers",
                    found=f"non-numeric values, first: {_first_rows(raw, garbage)}",
                )
        else:
            num = pd.to_numeric(col, errors="coerce")
        out[canon] = num.astype("float64").to_numpy()

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
        out, raw = out[keep].reset_index(drop=True), raw[keep].reset_index(drop=True)
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
    out, raw = out.iloc[order].reset_index(drop=True), raw.iloc[order].reset_index(drop=True)
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
        out = out.drop_duplicates("date").reset_index(drop=True)

    if len(out) < min_rows:
        raise XferInputError(
            file=path, field="rows",
            expected=f"at least {min_rows} daily bars (feature warm-up + label horizon + splits)",
            found=f"{len(out)}",
            hint="pass --min-rows to lower the bar if you use short windows",
        )
    return out, report
