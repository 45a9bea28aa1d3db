"""Market data store: one Parquet file per market, its catalog entry inside the file.

Layout (``XFER_HOME``, default ``~/.xfer``)::

    markets/<id>.parquet      user markets (imported or synthetic)

plus the embedded samples shipped inside the package (``xfer/data/samples/*.parquet``),
which are read-only and available with no import step.

Each file is a plain table (``date``, ``close`` and whichever of ``open``, ``high``, ``low``,
``volume``, ``spread`` exist) readable by pandas, polars or DuckDB without xfer; the catalog
entry (:class:`MarketInfo`) is stored as JSON in the Parquet key-value metadata under
``xfer.market``. Keeping data and metadata in one file makes a write a single atomic
rename: a failed import never leaves half a market behind, and a new id is claimed in one
step (two imports racing for one id: one wins, the other is refused).

The file name is the id. Anything else in ``markets/`` (a symbolic link, which is never
followed; a folder; a file that is not an xfer market; a market file renamed by hand, whose
catalog entry names another id) is left out of the catalog with a one-line warning on stderr
naming it, and reading it by id is an :class:`~xfer.errors.XferInputError` naming the file:
one foreign file never stops the store from serving the others.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from xfer.errors import XferInputError
from xfer.io import atomic_write

ASSET_CLASSES = ("equity", "index", "commodity", "fx", "crypto", "etf", "volatility", "rates")
LIQUIDITY_TIERS = ("high", "medium", "low", "unknown")
PRICE_COLUMNS = ("open", "high", "low", "close")
OPTIONAL_COLUMNS = ("open", "high", "low", "volume", "spread")
"""Columns a market may have besides ``date`` and ``close``; absent ones are masked downstream."""
METADATA_KEY = b"xfer.market"
MARKET_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")

AssetClass = Literal["equity", "index", "commodity", "fx", "crypto", "etf", "volatility", "rates"]
LiquidityTier = Literal["high", "medium", "low", "unknown"]
Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual", "intraday"]


class MarketInfo(BaseModel):
    """Catalog entry of one market."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Unique id, lowercase: letters, digits, '_', '.', '-'.")
    name: str = Field(description="Display name.")
    asset_class: AssetClass = Field(description="equity, index, commodity, fx, ...")
    region: str = Field(default="unknown", description="e.g. US, global.")
    liquidity_tier: LiquidityTier = Field(default="unknown", description="high/medium/low.")
    frequency: Frequency = Field(
        default="daily",
        description="Bar frequency inferred at import; anything but daily needs --allow-frequency.",
    )
    gaps: tuple[tuple[date, date], ...] = Field(
        default=(),
        description="Gaps longer than the import threshold (10 calendar days for daily bars): "
        "(last bar before, first bar after).",
    )
    source: str = Field(default="", description="Where the data came from.")
    licence: str = Field(default="", description="Licence of the data.")
    first_date: date = Field(description="First bar.")
    last_date: date = Field(description="Last bar.")
    n_rows: int = Field(description="Number of bars.")
    columns: tuple[str, ...] = Field(description="Data columns present (close always).")
    tags: tuple[str, ...] = Field(default=(), description="Groups, e.g. us_large_cap, energy.")
    synthetic: bool = Field(default=False, description="Made by xfer's generator.")
    synth_params: dict[str, Any] | None = Field(
        default=None, description="Generator spec and seed: the ground truth of a synthetic market."
    )
    embedded: bool = Field(default=False, description="Shipped inside the package (read-only).")


@dataclass(frozen=True)
class Market:
    """A market's catalog entry and its bars (``date`` column first, ascending)."""

    info: MarketInfo
    frame: pd.DataFrame


def default_home() -> Path:
    """``$XFER_HOME`` if set, else ``~/.xfer``."""
    env = os.environ.get("XFER_HOME")
    return Path(env).expanduser() if env else Path.home() / ".xfer"


def _samples_dir() -> Path:
    return Path(str(resources.files("xfer.data") / "samples"))


def validate_market_id(market_id: str, *, file: str | Path | None = None) -> str:
    """Return ``market_id`` if it is a valid id, else raise :class:`XferInputError`."""
    if not isinstance(market_id, str) or not MARKET_ID_RE.fullmatch(market_id):
        raise XferInputError(
            file=file,
            field="market id",
            expected="1-64 lowercase letters, digits, '_', '.', '-' starting with a letter/digit",
            found=repr(market_id),
        )
    return market_id


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    """One line on stderr, once per process (a catalog is listed many times by one command)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _unreadable(path: Path, exc: BaseException) -> XferInputError:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return XferInputError(file=path, expected="an xfer market file (Parquet written by xfer)",
                          found=f"an unreadable file ({type(exc).__name__}: {first})",
                          hint="remove it from the store's markets folder, or re-import the data "
                               "with `xfer data import --replace`")


def read_info(path: Path) -> MarketInfo:
    """Read only the catalog entry of a market file (no data pages are read).

    A file that is not an xfer market (not Parquet, no ``xfer.market`` key, an entry that does
    not validate) is an :class:`XferInputError` naming it; a missing file stays FileNotFoundError.
    """
    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, exc) from None
    if METADATA_KEY not in meta:
        raise XferInputError(
            file=path, field="metadata", expected="an xfer market file", found="no xfer.market key (unreadable "
            "as a market: a Parquet file not written by xfer)",
            hint="import it with `xfer data import`, or remove it from the store's markets folder",
        )
    try:
        return MarketInfo.model_validate_json(meta[METADATA_KEY])
    except ValueError as exc:  # pydantic's ValidationError
        raise _unreadable(path, exc) from None


def write_market_file(frame: pd.DataFrame, info: MarketInfo, path: Path, *, replace: bool = True) -> None:
    """Write ``frame`` with ``info`` to ``path`` atomically (temp file, then rename).

    ``replace=False``: FileExistsError if ``path`` exists, checked as the file is put in place.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = info.model_dump_json().encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"), replace=replace)


def _not_a_market_file(path: Path) -> str | None:
    """Why ``path`` (an existing ``*.parquet`` name in a markets folder) is no market file, or None."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):  # no such entry (or no such folder)
        return None
    if stat.S_ISLNK(st.st_mode):
        return (f"a symbolic link (to {os.readlink(path)}), which xfer never follows in its store "
                "(import the data with `xfer data import` instead)")
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a folder?)"
    if not MARKET_ID_RE.fullmatch(path.stem):
        return (f"its name {path.stem!r} is not a market id (1-64 lowercase letters, digits, '_', '.', '-'), "
                "so no id reads it")
    return None


def _check_id(info: MarketInfo, market_id: str, path: Path) -> MarketInfo:
    """The file name is the id: a file copied or renamed by hand keeps another id inside."""
    if info.id != market_id:
        raise XferInputError(file=path, field="id", expected=f"a catalog entry of market {market_id!r} (the file "
                             "name is the id)", found=f"an entry for {info.id!r}: renamed or copied by hand",
                             hint=f"rename it back to {info.id}.parquet, or re-import the data as {market_id!r}")
    return info


def info_for_frame(frame: pd.DataFrame, **fields: Any) -> MarketInfo:
    """Build a :class:`MarketInfo` whose dates, row count and columns come from ``frame``."""
    cols = tuple(c for c in ("open", "high", "low", "close", "volume", "spread") if c in frame)
    return MarketInfo(
        first_date=frame["date"].iloc[0].date(),
        last_date=frame["date"].iloc[-1].date(),
        n_rows=len(frame),
        columns=cols,
        **fields,
    )


class Store:
    """The market catalog: embedded samples plus the user's markets under ``root``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_home()

    @property
    def markets_dir(self) -> Path:
        return self.root / "markets"

    def _embedded_paths(self) -> dict[str, Path]:
        d = _samples_dir()
        return {p.stem: p for p in sorted(d.glob("*.parquet"))} if d.is_dir() else {}

    def _user_paths(self) -> dict[str, Path]:
        """The regular files ``<id>.parquet`` of the markets folder; other ``*.parquet`` entries (a
        symbolic link, a folder, a name that is no id) are skipped with a warning."""
        d = self.markets_dir
        if not d.is_dir():
            return {}
        try:
            names = sorted(p for p in d.iterdir() if p.name.endswith(".parquet") and not p.name.startswith("."))
        except OSError as exc:
            raise XferInputError(file=d, field="store", expected="a readable markets folder",
                                 found=f"cannot list it ({exc.strerror or exc})") from None
        out = {}
        for p in names:
            why = _not_a_market_file(p)
            if why is not None:
                _warn(f"skipping {p}: {why}")
                continue
            out[p.stem] = p
        return out

    def path(self, market_id: str) -> Path:
        """File of a market (user markets shadow nothing: ids are unique)."""
        return self._path(market_id)

    def _path(self, market_id: str) -> Path:
        # Every read goes through here: an id is a file name, never a path out of the store.
        validate_market_id(market_id)
        user = self.markets_dir / f"{market_id}.parquet"
        why = _not_a_market_file(user)
        if why is not None:
            raise XferInputError(file=user, field="market", expected=f"a market file for {market_id!r}", found=why)
        if user.is_file():
            return user
        emb = _samples_dir() / f"{market_id}.parquet"
        if emb.is_file():
            return emb
        raise XferInputError(
            field="market",
            expected=f"one of the {len(self.ids())} markets in the catalog (see `xfer data list`)",
            found=repr(market_id),
            hint=_did_you_mean(market_id, self.ids()),
        )

    def ids(self) -> list[str]:
        """All market ids, embedded and user."""
        return sorted({*self._embedded_paths(), *self._user_paths()})

    def list(self) -> list[MarketInfo]:
        """Catalog entries of every market, sorted by id."""
        paths = {**self._embedded_paths(), **self._user_paths()}
        out = []
        for k in sorted(paths):
            try:
                info = read_info(paths[k])
            except FileNotFoundError:  # removed by another process since the listing (a shared store)
                continue
            except XferInputError as exc:  # a foreign file: the rest of the store still serves
                _warn(f"skipping unreadable market file {paths[k]}: {exc.found}")
                continue
            if info.id != k:
                _warn(f"skipping {paths[k]}: its catalog entry is market {info.id!r}, not {k!r} (renamed or copied "
                      "by hand; the file name is the id)")
                continue
            out.append(info)
        return out

    def __contains__(self, market_id: object) -> bool:
        return isinstance(market_id, str) and market_id in self.ids()

    def info(self, market_id: str) -> MarketInfo:
        path = self._path(market_id)
        return _check_id(read_info(path), market_id, path)

    def load(self, market_id: str) -> Market:
        """Load one market's bars and catalog entry."""
        path = self._path(market_id)
        info = _check_id(read_info(path), market_id, path)
        try:
            frame = pq.read_table(path).to_pandas()
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(path, exc) from None
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
        return Market(info=info, frame=frame)

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Expand ids and ``@tag`` groups (e.g. ``@us_large_cap``) to market ids, in order."""
        out: list[str] = []
        catalog: list[MarketInfo] | None = None
        for name in names:
            if name.startswith("@"):
                catalog = catalog if catalog is not None else self.list()
                tag = name[1:]
                hits = [m.id for m in catalog if tag in m.tags]
                if not hits:
                    tags = sorted({t for m in catalog for t in m.tags})
                    raise XferInputError(
                        field="market group",
                        expected=f"a tag in {tags}",
                        found=repr(name),
                    )
                out.extend(h for h in hits if h not in out)
            else:
                self._path(name)  # raises with the valid names
                if name not in out:
                    out.append(name)
        return out

    def check_new(self, market_id: str, *, replace: bool = False) -> Path:
        """Path a new market would take; raises if the id is taken (or embedded)."""
        validate_market_id(market_id)
        if market_id in self._embedded_paths():
            raise XferInputError(
                field="--market",
                expected="an id not used by an embedded sample (they are read-only)",
                found=repr(market_id),
            )
        path = self.markets_dir / f"{market_id}.parquet"
        why = _not_a_market_file(path)
        if why is not None and os.path.lexists(path):
            raise XferInputError(file=path, field="--market", expected="a new market id, or a market file to replace",
                                 found=why, hint="remove it by hand first")
        if os.path.lexists(path) and not replace:
            raise XferInputError(
                field="--market",
                expected="a new market id",
                found=f"{market_id!r}, which already exists in {path}",
                hint="pass --replace to overwrite it",
            )
        return path

    def add(self, frame: pd.DataFrame, info: MarketInfo, *, replace: bool = False) -> Path:
        """Add a market atomically; refuses an existing id unless ``replace``."""
        path = self.check_new(info.id, replace=replace)
        try:
            write_market_file(frame, info, path, replace=replace)
        except FileExistsError:  # another process added it since check_new: never overwrite it
            raise XferInputError(
                field="--market",
                expected="a new market id",
                found=f"{info.id!r}, which already exists in {path} (added by another process meanwhile)",
                hint="pass --replace to overwrite it",
            ) from None
        return path


def _did_you_mean(name: str, valid: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, valid, n=3)
    if close:
        return f"did you mean {', '.join(close)}?"
    return f"valid ids: {', '.join(valid[:40])}{' ...' if len(valid) > 40 else ''}"


def catalog_json(infos: list[MarketInfo]) -> str:
    """The catalog as a JSON array (dates as ISO strings)."""
    return json.dumps([i.model_dump(mode="json") for i in infos], indent=2)
