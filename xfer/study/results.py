"""The study directory's tables: collect the finished cells, aggregate, write atomically.

The aggregation itself is :mod:`xfer.evaluate.tables` (shared with ``xfer transfer``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xfer.evaluate import tables as T
from xfer.evaluate.contract import RESULTS_COLUMNS
from xfer.io import write_parquet


def collect(study_dir: Path) -> pd.DataFrame:
    """The union of finished cells' rows."""
    files = sorted((study_dir / "cells").glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(RESULTS_COLUMNS))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def write_tables(study_dir: Path) -> dict[str, pd.DataFrame]:
    """Collect the cells and (re)write every table of the study directory."""
    res = collect(study_dir)
    tables = {"results": res, "verdicts": T.verdicts(res), "curves": T.curves(res), "sizing": T.sizing(res),
              "comparisons": T.comparisons(res)}
    for name, frame in tables.items():
        write_parquet(frame, study_dir / f"{name}.parquet")
    return tables
