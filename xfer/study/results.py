"""The study directory's tables: collect the finished cells, aggregate, write atomically.

The aggregation itself is :mod:`xfer.evaluate.tables` (shared with ``xfer transfer``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xfer.evaluate import tables as T
from xfer.evaluate.contract import PREDICTION_COLUMNS, RESULTS_COLUMNS
from xfer.io import write_parquet


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
