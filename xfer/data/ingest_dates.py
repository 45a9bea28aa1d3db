"""Dates of an imported file: parsed, taken in the exchange's zone, within the storable range.

Text dates are tried against :data:`DATE_FORMATS` (or ``--date-format``), and a file two of
them read differently is refused. Time-zone-aware timestamps (Parquet) and text dates with a
UTC offset are converted into ``--timezone`` before their date is taken; without it only
zoned timestamps at midnight in their own zone are accepted, since the calendar date of
``22:00 New York`` stored as UTC is the next day. Dates outside :data:`DATE_RANGE` are refused
naming their lines, as are numbers (Excel serial days, epoch seconds) given as dates.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from xfer.data.ingest_file import clip, first_rows
from xfer.errors import XferInputError

DATE_FORMATS = (
    "%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d",
    "%d.%m.%Y", "%m.%d.%Y",
)
"""Formats tried when no ``--date-format`` is given; a file two of them read differently is refused."""
DATE_RANGE = (pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-11"))
"""Dates a market can hold (nanosecond timestamps)."""

_OFFSET = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d*)?)?\s*(Z|[+-]\d{2}:?\d{2})$"


def parse_dates(
    values: pd.Series, path: Path, col: str, fmt: str | None, tz: str | None = None
) -> tuple[pd.Series, str]:
    """Parse a date column into exchange-local timestamps; times of day are kept (see
    :func:`infer_frequency`). ``tz`` converts time-zone-aware values into that zone."""
    frame = pd.DataFrame({col: values}, index=values.index)
    frame.attrs["unit"] = values.attrs.get("unit", "line")
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed, how = _local_dates(pd.to_datetime(values), frame, path, col, tz), "native"
        if parsed.isna().any():
            raise XferInputError(
                file=path, field=f"column {col!r}", expected="a date on every row",
                found=f"{int(parsed.isna().sum())} missing date(s), first: {first_rows(frame, parsed.isna())}",
            )
    else:
        text = values.astype(str).str.strip()
        offsets = text.str.extract(_OFFSET, expand=False)
        if offsets.notna().any():
            parsed, how = _offset_dates(text, offsets, frame, path, col, fmt, tz)
        else:
            parsed, how = _text_dates(text, frame, path, col, fmt)
    outside = ((parsed < DATE_RANGE[0]) | (parsed >= DATE_RANGE[1] + pd.Timedelta(days=1))).to_numpy()
    if outside.any():
        raise _out_of_range(path, col, frame, outside)
    return parsed.astype("datetime64[ns]"), how


def _out_of_range(path: Path, col: str, frame: pd.DataFrame, mask: np.ndarray) -> XferInputError:
    return XferInputError(
        file=path, field=f"column {col!r}",
        expected=f"dates from {DATE_RANGE[0].date()} to {DATE_RANGE[1].date()} (the range a market can hold)",
        found=f"{int(mask.sum())} date(s) outside it, first: {first_rows(frame, mask)}",
    )


def _local_dates(parsed: pd.Series, frame: pd.DataFrame, path: Path, col: str, tz: str | None) -> pd.Series:
    """Native timestamps without a zone; zoned ones in ``tz``, or in their own zone when every
    one is at midnight there (else the date depends on the exchange's zone: refused)."""
    zone = getattr(parsed.dt, "tz", None)
    if zone is None:
        return parsed
    if tz is not None:
        return parsed.dt.tz_convert(tz).dt.tz_localize(None)
    local = parsed.dt.tz_localize(None)
    timed = (local.notna() & (local != local.dt.normalize())).to_numpy()
    if timed.any():
        i = int(np.flatnonzero(timed)[0])
        raise XferInputError(
            file=path, field=f"column {col!r}",
            expected="dates, or time-zone-aware timestamps at midnight in their zone",
            found=(f"{int(timed.sum())} timestamp(s) in {zone} with a time of day, e.g. {frame.attrs['unit']} "
                   f"{frame.index[i]}: {parsed.iloc[i]}; their calendar date depends on the exchange's time zone"),
            hint="pass --timezone ZONE (the exchange's, e.g. America/New_York or Europe/London) to take each "
                 "date in that zone",
        )
    return local


def _offset_dates(text: pd.Series, offsets: pd.Series, frame: pd.DataFrame, path: Path, col: str,
                  fmt: str | None, tz: str | None) -> tuple[pd.Series, str]:
    """Dates written with a UTC offset (``2001-01-02T22:00:00-05:00``): converted into ``tz``."""
    has = offsets.notna().to_numpy()
    i = int(np.flatnonzero(has)[0])
    if tz is None:
        raise XferInputError(
            file=path, field=f"column {col!r}", expected="dates without a UTC offset",
            found=(f"{int(has.sum())} date(s) with a UTC offset, e.g. {offsets.iloc[i]!r} in {frame.attrs['unit']} "
                   f"{frame.index[i]}: {clip(text.iloc[i])!r}; their calendar date depends on the exchange's zone"),
            hint="pass --timezone ZONE (the exchange's, e.g. America/New_York) to convert them and take each "
                 "date in that zone",
        )
    parsed = pd.to_datetime(text, utc=True, format=fmt or "ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy() | ~has
    if bad.any():
        raise XferInputError(
            file=path, field=f"column {col!r}", expected="dates that all carry a UTC offset, in one format",
            found=f"{int(bad.sum())} unparseable value(s) or value(s) without an offset, first: {first_rows(frame, bad)}",
            hint="pass --date-format (with %z for the offset)",
        )
    return parsed.dt.tz_convert(tz).dt.tz_localize(None), fmt or "ISO8601"


def _text_dates(text: pd.Series, frame: pd.DataFrame, path: Path, col: str, fmt: str | None) -> tuple[pd.Series, str]:
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
                           f"{frame.index[i]}: {clip(text.iloc[i])!r} is {p0.iloc[i].date()} or "
                           f"{p1.iloc[i].date()}; no day above 12 tells them apart)"),
                    hint=f"pass --date-format '{f0}' or --date-format '{f1}'",
                )
        return p0, f0
    assert best is not None
    bad_mask = best[1].isna().to_numpy()
    if _beyond_pandas(text[bad_mask].head(20), best[2]):
        raise _out_of_range(path, col, frame, bad_mask)
    numeric = text[bad_mask].str.fullmatch(r"\d{5,7}|\d{9,13}(?:\.\d*)?").all()
    raise XferInputError(
        file=path,
        field=f"column {col!r}",
        expected=f"dates in one format of {list(formats)}",
        found=f"{best[0]} unparseable value(s), first: {first_rows(frame, bad_mask)}",
        hint=("numbers are not dates: Excel serial days or Unix epoch seconds/milliseconds? write them as "
              "dates (YYYY-MM-DD)" if numeric else "pass --date-format, e.g. '%d/%m/%Y' or '%Y-%m-%d %H:%M'"),
    )


def _beyond_pandas(values: pd.Series, fmt: str) -> bool:
    """Whether values pandas could not parse are dates outside :data:`DATE_RANGE` (pandas < 3
    coerces those to NaT; pandas 3 parses them, and :func:`parse_dates` checks the range)."""
    lo, hi = DATE_RANGE[0].to_pydatetime(), DATE_RANGE[1].to_pydatetime()
    for v in values:
        try:
            d = datetime.strptime(v, fmt)
        except ValueError:
            continue
        if d < lo or d.date() > hi.date():
            return True
    return False
