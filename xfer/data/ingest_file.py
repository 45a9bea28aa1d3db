"""Open a file given to ``xfer data import``: what it is, its column names and its table.

Only the first :data:`HEAD_BYTES` are read before the file is known to be a table: a directory
or FIFO is refused without being opened; ZIP archives and Excel workbooks, PDF, SQLite, JSON,
HTML and binary (NUL) files are named as such; gzip, bz2 and xz files are read through, and
UTF-16 files with a byte-order mark; a header line longer than 64 KiB or a column name longer
than :data:`MAX_NAME` characters is refused before pandas parses anything. Two columns the
importer could pick with the same name (``Date`` and ``date``) are refused, naming the flag
that chooses. Values echoed in a message are cut to :data:`CLIP` characters.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
import stat
import zipfile
from dataclasses import dataclass
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
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
"""Delimiters recognised in CSV files (the one giving a consistent table wins)."""
HEAD_BYTES = 1 << 16
"""The header line must end within the first 64 KiB of the (decompressed) file; only this much
is read before the file is known to be a table."""
MAX_NAME = 256
"""Longest column name accepted, in characters."""
CLIP = 80
"""Values from the file echoed in a message are cut to this many characters."""

_PRICE_NAMES = frozenset(COLUMN_ALIASES["close"])
_PICKABLE = frozenset(DATE_NAMES) | frozenset(a for v in COLUMN_ALIASES.values() for a in v)
_COMPRESSIONS = ((b"\x1f\x8b", "gzip", gzip.open), (b"BZh", "bz2", bz2.open),
                 (b"\xfd7zXZ\x00", "xz", lzma.open))
_NOT_TABLES = (
    (b"PK\x03\x04", "a ZIP archive", "unzip it and import the CSV inside"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)", "save the sheet as CSV (UTF-8) and import that"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it first (zstd -d FILE)"),
    (b"%PDF", "a PDF document", "export the prices as CSV"),
    (b"SQLite format 3", "an SQLite database", "export the table as CSV"),
)


@dataclass
class Source:
    """What the first bytes of a file say: Parquet or CSV, its compression and text encoding."""

    kind: str
    compression: str | None = None
    encoding: str = "utf-8"
    head: str = ""  # the decoded first HEAD_BYTES (CSV)
    cut: bool = False  # the file is longer than ``head``


def clip(value: object, limit: int = CLIP) -> str:
    """``value`` as text of at most ``limit`` characters (a cut value ends in '...')."""
    s = str(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def show(v: object) -> str:
    """A value from the file for a message: ``'text'`` or a number, cut to :data:`CLIP`."""
    if isinstance(v, np.generic):
        v = v.item()
    return repr(clip(v)) if isinstance(v, str) else clip(repr(v))


def names_list(cols: object, limit: int = 12) -> str:
    """Column names for a message: at most ``limit``, each cut to :data:`CLIP` characters."""
    cols = [str(c) for c in cols]  # type: ignore[attr-defined]
    shown = ", ".join(repr(clip(c)) for c in cols[:limit])
    return f"[{shown}{f', ... and {len(cols) - limit} more' if len(cols) > limit else ''}]"


def norm(name: object) -> str:
    return str(name).lstrip("\ufeff").strip().lower()


def first_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """The first offending rows, cited by their line (CSV) or row (Parquet) in the file.

    ``frame.index`` holds those numbers (set by :func:`read_table` and carried through every
    sort and drop), and ``frame.attrs['unit']`` says which of the two they are. Each row shows
    at most 8 columns, each value cut to :data:`CLIP` characters.
    """
    m = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(m)[:limit]
    unit = frame.attrs.get("unit", "line")
    parts = []
    for i in idx:
        items = list(frame.iloc[i].items())
        text = ", ".join(f"{clip(k, 40)!r}: {show(v)}" for k, v in items[:8])
        parts.append(f"{unit} {frame.index[i]}: {{{text}{', ...' if len(items) > 8 else ''}}}")
    more = int(m.sum()) - len(idx)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def check_path(path: Path) -> None:
    """A regular file; a directory, FIFO or device is named as such and never opened."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        found = "a broken symbolic link" if path.is_symlink() else "no such file"
        raise XferInputError(file=path, expected="an existing file", found=found) from None
    except OSError as exc:
        raise XferInputError(file=path, expected="a readable file", found=f"{type(exc).__name__}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device or socket")
    raise XferInputError(file=path, expected="a regular file (CSV or Parquet)", found=f"{kind}, not a regular file",
                         hint="pass one file (a Parquet dataset directory is not read)" if "dir" in kind else None)


def _read_head(path: Path, opener, compression: str | None) -> bytes:
    try:
        with opener(path, "rb") as fh:
            return fh.read(HEAD_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        what = f"a readable {compression}-compressed file" if compression else "a readable file"
        raise XferInputError(file=path, expected=what, found=f"{type(exc).__name__}: {clip(exc, 200)}") from None


def sniff(path: Path) -> Source:
    """Parquet or CSV from the first bytes, refusing archives, JSON, HTML and binary files;
    for CSV the decoded first :data:`HEAD_BYTES` (decompressed if gzip, bz2 or xz)."""
    data = _read_head(path, open, None)
    if data.startswith(b"PAR1") or path.suffix.lower() in (".parquet", ".pq"):
        return Source("parquet")  # pyarrow says what is wrong with a bad one
    compression, opener = next(((c, o) for sig, c, o in _COMPRESSIONS if data.startswith(sig)), (None, open))
    if compression:
        data = _read_head(path, opener, compression)
    for sig, what, hint in _NOT_TABLES:
        if data.startswith(sig):
            if sig == b"PK\x03\x04" and _is_xlsx(path):
                what, hint = "an Excel workbook (.xlsx)", "save the sheet as CSV (UTF-8) and import that"
            raise XferInputError(file=path, expected="a CSV or Parquet file", found=what, hint=hint)
    cut, data = len(data) > HEAD_BYTES, data[:HEAD_BYTES]
    encoding = ("utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff"))
                else "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
    try:
        head = codecs.getincrementaldecoder(encoding)().decode(data, final=not cut)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise XferInputError(
            file=path, expected="UTF-8 text (or UTF-16 with a byte-order mark)",
            found=f"byte 0x{data[exc.start]:02x} on line {line}, which is not UTF-8 (Latin-1 or Windows-1252 text?)",
            hint="re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv",
        ) from None
    _check_text(path, head, cut)
    return Source("csv", compression, encoding, head, cut)


def _is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.startswith("xl/") for n in z.namelist()[:200])
    except (OSError, zipfile.BadZipFile):
        return False


def _check_text(path: Path, head: str, cut: bool) -> None:
    """The first bytes of a CSV: text, not JSON or HTML, with a header line under 64 KiB."""
    if "\x00" in head:
        line = head[: head.index("\x00")].count("\n") + 1
        raise XferInputError(file=path, expected="a text (CSV) file",
                             found=f"a NUL byte on line {line} (a binary file, or UTF-16 text without a byte-order mark?)")
    start = head.lstrip()
    if not start:
        raise XferInputError(file=path, expected="a readable CSV or Parquet file",
                             found="an empty file" if not head else "only blank lines")
    if start[0] == "{" or re.match(r"\[\s*[\[{\"\d-]", start):
        raise XferInputError(file=path, expected="a CSV or Parquet file", found="JSON",
                             hint="convert it, e.g. pandas.read_json(FILE).to_csv('prices.csv', index=False)")
    if re.match(r"<(?:!doctype|html|\?xml|head|body|!--)", start, re.IGNORECASE):  # not '<DATE>;<CLOSE>'
        raise XferInputError(file=path, expected="a CSV or Parquet file",
                             found="an HTML or XML document (a web page saved instead of the data?)")
    if cut and re.search(r"[\r\n]", head) is None:
        raise XferInputError(file=path, field="header", expected=f"a first line (the column names) under {HEAD_BYTES // 1024} KiB",
                             found=f"no line end in the first {HEAD_BYTES // 1024} KiB")


def sniff_delimiter(head: str, cut: bool) -> str:
    """The delimiter that splits the first lines into the widest consistent table."""
    lines = [ln for ln in head.splitlines() if ln.strip()][:50]
    if len(lines) > 2 and cut:
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


def column_names(path: Path, src: Source, delim: str) -> list[str]:
    """The column names as the file has them (pandas renames repeated names to ``x.1``)."""
    if src.kind == "parquet":
        try:
            import pyarrow.parquet as pq

            return [str(n) for n in pq.read_schema(path).names]
        except Exception as exc:  # a corrupt file: pyarrow raises many types
            raise _unreadable(path, exc) from exc
    try:  # the first record: a quoted name may span lines
        rows = csv.reader(io.StringIO(src.head.lstrip("\r\n")), delimiter=delim, skipinitialspace=True)
        return next(rows, [])
    except csv.Error:
        return []  # pandas reads it, or says what is wrong


def check_names(path: Path, names: list[str], date_column: str | None, price_column: str | None,
                 parquet: bool) -> None:
    """Names under :data:`MAX_NAME` characters, and no two the importer could pick alike."""
    for i, n in enumerate(names):
        if len(n) > MAX_NAME:
            raise XferInputError(file=path, field="header", expected=f"column names of at most {MAX_NAME} characters",
                                 found=f"column {i + 1} of {len(n)} characters ({clip(n)!r})")
    groups: dict[str, list[str]] = {}
    for n in names:
        if n.strip():
            groups.setdefault(norm(n), []).append(n)
    for key, hits in groups.items():
        if len(hits) < 2:
            continue
        flag, chosen = ("--date-column", date_column) if key in DATE_NAMES or norm(date_column or "") == key else (
            ("--price-column", price_column) if key in _PRICE_NAMES or norm(price_column or "") == key else (None, None))
        if flag is None and key not in _PICKABLE and not parquet:
            continue
        if chosen is not None and (hits.count(chosen) == 1 or norm(chosen) != key):
            continue  # the flag picks one of them, or another column
        exact = len(set(hits)) < len(hits)
        raise XferInputError(
            file=path, field="columns", expected="one column per name (names compared case-insensitively)",
            found=f"{len(hits)} columns named {' and '.join(repr(clip(h)) for h in hits)}",
            hint="rename or drop one of them" if exact or flag is None
            else f"pass {flag} {hits[0]!r} or {flag} {hits[1]!r} to choose one",
        )


def _unreadable(path: Path, exc: Exception) -> XferInputError:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return XferInputError(file=path, expected="a readable CSV or Parquet file",
                          found=f"{type(exc).__name__}: {clip(text, 200)}")


def read_table(path: Path, src: Source, delim: str, names: list[str]) -> pd.DataFrame:
    """The table, indexed by line (CSV, the header is line 1) or row (Parquet) in the file."""
    try:
        if src.kind == "parquet":
            raw = pd.read_parquet(path)
            if isinstance(raw.index, pd.DatetimeIndex):  # dates stored as the index
                raw = raw.rename_axis(raw.index.name or "date").reset_index()
            elif any(n is not None for n in raw.index.names):  # named or multi-level index
                raw = raw.reset_index()
            raw.index = pd.RangeIndex(1, len(raw) + 1)  # 1-based row numbers
            raw.attrs["unit"] = "row"
            return raw
        raw = pd.read_csv(
            path, sep=delim, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True,
            skip_blank_lines=False, encoding=src.encoding, compression=src.compression,
        )
    except XferInputError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for corrupt files
        raise _unreadable(path, exc) from exc
    # Line numbers of the file: the header is line 1. Blank lines were kept so that the
    # numbering matches the file; drop them now, keeping the numbers.
    raw.index = pd.RangeIndex(2, len(raw) + 2)
    blank = np.ones(len(raw), dtype=bool)
    for i in range(raw.shape[1]):
        col = raw.iloc[:, i]
        blank &= col.isna().to_numpy(dtype=bool) | (col.astype(str).str.strip() == "").to_numpy(dtype=bool)
        if not blank.any():
            break
    raw = raw[~blank]
    raw.attrs["unit"] = "line"
    _check_repeated_header(path, raw, names if len(names) == raw.shape[1] else [str(c) for c in raw.columns])
    # An unnamed first column is the index written by `DataFrame.to_csv()`.
    first = raw.columns[0] if len(raw.columns) else ""
    if (str(first).startswith("Unnamed: 0") or str(first) == "") and not any(
            norm(c) in DATE_NAMES for c in raw.columns):
        raw = raw.rename(columns={first: "date"})
    return raw


def _check_repeated_header(path: Path, raw: pd.DataFrame, names: list[str]) -> None:
    """A line repeating the header: two exports concatenated into one file."""
    if raw.empty:
        return
    same = np.ones(len(raw), dtype=bool)
    for i in range(min(2, raw.shape[1])):
        same &= (raw.iloc[:, i].astype(str).str.strip() == names[i].strip()).to_numpy()
    if same.any():
        lines = [str(n) for n in raw.index[same][:5]]
        raise XferInputError(file=path, expected="one header line, then data",
                             found=f"the header repeated on line{'s' if len(lines) > 1 else ''} {', '.join(lines)} (files concatenated?)",
                             hint="remove the repeated header line(s)")


def find_date_column(raw: pd.DataFrame, path: Path, date_column: str | None, delim: str) -> str:
    cols = {norm(c): c for c in raw.columns}
    if date_column is not None:
        if date_column in raw.columns:
            return date_column
        if norm(date_column) in cols:
            return cols[norm(date_column)]
        raise XferInputError(
            file=path, field="--date-column", expected=f"one of {names_list(raw.columns)}",
            found=repr(clip(date_column)),
        )
    for name in DATE_NAMES:
        if name in cols:
            return cols[name]
    hint = "pass --date-column NAME"
    found = f"columns {names_list(raw.columns)}"
    if len(raw.columns) == 1 and delim:
        found = f"one column (the first line does not split on {DELIMITERS.get(delim, repr(delim))}s)"
        hint = (f"the file was split on {DELIMITERS.get(delim, repr(delim))}s into one column; "
                "pass --delimiter (e.g. --delimiter ';') if it uses another delimiter, or --date-column NAME")
    raise XferInputError(
        file=path,
        field="date column",
        expected=f"a column named one of {list(DATE_NAMES)} (any case) or a date index",
        found=found,
        hint=hint,
    )


def open_table(path: Path, delimiter: str | None, date_column: str | None,
               price_column: str | None) -> tuple[pd.DataFrame, str, Source]:
    """The file's table (indexed by line or row in the file), its delimiter and what it is."""
    check_path(path)
    src = sniff(path)
    delim = "" if src.kind == "parquet" else delimiter if delimiter is not None else sniff_delimiter(src.head, src.cut)
    names = column_names(path, src, delim)
    check_names(path, names, date_column, price_column, parquet=src.kind == "parquet")
    return read_table(path, src, delim, names), delim, src
