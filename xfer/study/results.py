"""The study directory's tables: collect the finished cells, aggregate, write atomically.

The aggregation itself is :mod:`xfer.evaluate.tables` (shared with ``xfer transfer``).

A cell counts as finished only when its results (``cells/<id>.parquet``) and test days
(``days/<id>.parquet``) both read back whole (:func:`finished_cells`); an unreadable one, say
truncated by a full disk or a copy cut short, is moved to ``cells/corrupt/`` (``days/corrupt/``)
with a message naming it, and the cell runs again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xfer.evaluate import tables as T
from xfer.evaluate.contract import PREDICTION_COLUMNS, RESULTS_COLUMNS
from xfer.io import write_parquet


def unreadable(path: Path) -> str | None:
    """None when ``path`` is a whole parquet file (footer and every page decode), else what is wrong."""
    try:
        pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def set_aside(path: Path, why: str, say: Callable[[str], None]) -> Path:
    """Move an unreadable file to ``<its folder>/corrupt/<name>.<timestamp>`` and say so."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.parent / "corrupt" / f"{path.name}.{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = path.parent / "corrupt" / f"{path.name}.{stamp}.{n}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    say(f"{path}: unreadable ({why}); moved to {dest}; its cell runs again")
    return dest


def finished_cells(study_dir: Path, cell_ids: Iterable[str], say: Callable[[str], None]) -> set[str]:
    """The cells whose results file reads back whole (and their test days, when present).

    A truncated or corrupt ``cells/<id>.parquet`` or ``days/<id>.parquet`` is set aside
    (:func:`set_aside`), both of the cell's files then, so the cell is pending and runs again.
    A missing days file is left to :func:`collect` (a study written by an older xfer).
    """
    done = set()
    for cid in cell_ids:
        cell, days = study_dir / "cells" / f"{cid}.parquet", study_dir / "days" / f"{cid}.parquet"
        if not cell.exists():
            continue
        bad = [(p, why) for p in (cell, days) if p.exists() and (why := unreadable(p)) is not None]
        if not bad:
            done.add(cid)
            continue
        for p, why in bad:
            set_aside(p, why, say)
        if cell.exists():
            set_aside(cell, f"its test days {days.name} were unreadable", say)
    return done


def _union(files: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    if not files:
        return pd.DataFrame(columns=list(columns))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def collect(study_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The union of finished cells' fits, and of their test days (cells with a results file only).

    Raises :class:`~xfer.evaluate.tables.StaleTableError` naming the missing columns when a
    cell was written by an older xfer.
    """
    files = sorted((study_dir / "cells").glob("*.parquet"))
    res = _union(files, RESULTS_COLUMNS)
    day_files = [study_dir / "days" / f.name for f in files]
    missing = [p for p in day_files if not p.exists()]
    if missing:
        raise T.StaleTableError(
            file=missing[0], field="days", expected="the test days of every finished cell",
            found=f"no such file ({len(missing)} cell(s) without test days)",
            hint="written by an older xfer (before day-level verdicts); re-run the study into a new directory")
    days = _union(day_files, PREDICTION_COLUMNS)
    if len(res):
        T.require_columns(res, RESULTS_COLUMNS, str(files[0]))
    return res, days


def write_tables(study_dir: Path) -> dict[str, pd.DataFrame]:
    """Collect the cells and (re)write every table of the study directory."""
    res, days = collect(study_dir)
    tables = T.all_tables(res, days)
    for name, frame in tables.items():
        write_parquet(frame, study_dir / f"{name}.parquet")
    return tables
